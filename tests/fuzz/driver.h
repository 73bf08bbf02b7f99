/* tests/fuzz/driver.h — the plain main() of every fuzz target when libFuzzer is not linked: run each
 * file of the given files/directories through LLVMFuzzerTestOneInput and, with --mutate N, also N
 * deterministic mutations of each (bit flips, byte overwrites, cuts, duplicated runs), so that CI
 * fuzzes for a bounded time with gcc alone. --make-corpus DIR writes the target's seeds.
 * Included once, by the target's .c file.
 */
#ifndef DISCOVERYD_TESTS_FUZZ_DRIVER_H
#define DISCOVERYD_TESTS_FUZZ_DRIVER_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t fuzz_rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One input and its mutations; returns how many inputs ran. */
static unsigned long fuzz_one(const uint8_t *in, size_t len, unsigned long mutations, uint64_t seed)
{
    LLVMFuzzerTestOneInput(in, len);
    uint8_t *b = malloc(2 * len + 16);
    for (unsigned long m = 0; m < mutations; m++) {
        size_t n = len;
        memcpy(b, in, len);
        unsigned edits = 1 + (unsigned)(fuzz_rng(&seed) % 4);
        for (unsigned e = 0; e < edits && n > 0; e++) {
            size_t at = (size_t)(fuzz_rng(&seed) % n);
            switch (fuzz_rng(&seed) % 4) {
            case 0:
                b[at] ^= (uint8_t)(1u << (fuzz_rng(&seed) % 8));
                break;
            case 1:
                b[at] = (uint8_t)fuzz_rng(&seed);
                break;
            case 2:
                n = at;
                break; /* cut */
            default: { /* repeat a run */
                size_t run = 1 + (size_t)(fuzz_rng(&seed) % 16);
                if (at + run > n)
                    run = n - at;
                if (n + run <= 2 * len + 16) {
                    memmove(b + at + run, b + at, n - at);
                    n += run;
                }
            }
            }
        }
        LLVMFuzzerTestOneInput(b, n);
    }
    free(b);
    return 1 + mutations;
}

static int fuzz_file(const char *path, unsigned long mutations, unsigned long *ran)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(b, 1, n > 0 ? (size_t)n : 0, f);
    fclose(f);
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ got;
    for (const char *p = path; *p; p++)
        seed = (seed ^ (uint8_t)*p) * 0x100000001b3ull;
    *ran += fuzz_one(b, got, mutations, seed | 1);
    free(b);
    return 0;
}

static int fuzz_driver_main(const char *name, int argc, char **argv, int (*make_corpus)(const char *dir))
{
    if (argc == 3 && strcmp(argv[1], "--make-corpus") == 0)
        return make_corpus(argv[2]);
    unsigned long mutations = 0, ran = 0;
    int first = 1;
    if (argc >= 3 && strcmp(argv[1], "--mutate") == 0) {
        mutations = strtoul(argv[2], NULL, 10);
        first = 3;
    }
    for (int i = first; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (fuzz_file(argv[i], mutations, &ran) != 0)
                return 1;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
            if (de->d_name[0] != '.' && fuzz_file(path, mutations, &ran) != 0)
                return 1;
        }
        if (d)
            closedir(d);
    }
    if (ran == 0) {
        fprintf(stderr, "usage: %s [--mutate N] FILE|DIR... | --make-corpus DIR (no inputs given)\n", name);
        return 2;
    }
    printf("%s: %lu inputs, no crash\n", name, ran);
    return 0;
}

#endif
