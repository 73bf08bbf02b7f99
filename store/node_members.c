/* store/node_members.c — the member table's encoding, peer URL parsing and member IDs (see
 * node_members.h). Pure.
 */
#include "store/node_members.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "store/hash.h"
#include "store/le.h"

int node_member_parse_url(const char *url, size_t len, char *host, size_t hostcap, uint16_t *port)
{
    const char *p = url, *end = url + len;
    if (len > 7 && strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (len > 8 && strncmp(p, "https://", 8) == 0)
        p += 8;
    else
        return -1;
    const char *hs = p, *he;
    if (*p == '[') {
        he = memchr(p, ']', (size_t)(end - p));
        if (!he)
            return -1;
        hs = p + 1;
        p = he + 1;
    } else {
        while (p < end && *p != ':')
            p++;
        he = p;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= hostcap || p >= end || *p != ':')
        return -1;
    for (const char *c = hs; c < he; c++)
        if (!(isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == ':' || *c == '_'))
            return -1;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    p++;
    unsigned long v = 0;
    if (p >= end || end - p > 5)
        return -1;
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

uint64_t node_member_founding_id(const char *name, const char *peer_url)
{
    char key[sizeof(((struct node_member *)0)->name) + sizeof(((struct node_member *)0)->peer_url) + 1];
    int kl = snprintf(key, sizeof(key), "%s%c%s", name, 0, peer_url); /* name\0url */
    uint64_t h = hash_of(HASH_INIT, key, kl < 0 ? 0 : (size_t)kl < sizeof(key) ? (size_t)kl : sizeof(key) - 1);
    return h ? h : 1;
}

uint64_t node_member_added_id(const char *peer_url, uint64_t cluster_id, uint64_t index)
{
    uint8_t tail[17];
    tail[0] = 0;
    le_put64(tail + 1, cluster_id);
    le_put64(tail + 9, index);
    uint64_t h = hash_of(hash_bytes(HASH_INIT, peer_url, strlen(peer_url)), tail, sizeof(tail));
    return h ? h : 1;
}

size_t node_members_encode(const struct node_member *members, size_t n, uint8_t *buf, size_t cap)
{
    if (n > NODE_MAX_MEMBERS || cap < 2)
        return 0;
    size_t off = 0;
    buf[off++] = NODE_MEMBERS_VERSION;
    buf[off++] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        const struct node_member *m = &members[i];
        size_t nl = strnlen(m->name, sizeof(m->name)), ul = strnlen(m->peer_url, sizeof(m->peer_url));
        if (nl >= sizeof(m->name) || ul >= sizeof(m->peer_url) || off + 8 + 1 + nl + 2 + ul > cap)
            return 0;
        le_put64(buf + off, m->id);
        off += 8;
        buf[off++] = (uint8_t)nl;
        memcpy(buf + off, m->name, nl);
        off += nl;
        buf[off++] = (uint8_t)ul;
        buf[off++] = (uint8_t)(ul >> 8);
        memcpy(buf + off, m->peer_url, ul);
        off += ul;
    }
    return off;
}

static int bad(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "member table: %s", what);
    return -1;
}

int node_members_decode(const uint8_t *buf, size_t len, struct node_member *out, size_t *n, char *err,
                        size_t errlen)
{
    if (len < 2 || buf[0] != NODE_MEMBERS_VERSION)
        return bad(err, errlen, "too short or an unknown version");
    size_t count = buf[1], off = 2;
    if (count > NODE_MAX_MEMBERS)
        return bad(err, errlen, "more than 16 members");
    for (size_t i = 0; i < count; i++) {
        struct node_member *m = &out[i];
        memset(m, 0, sizeof(*m));
        if (len - off < 9)
            return bad(err, errlen, "truncated");
        m->id = le_get64(buf + off);
        size_t nl = buf[off + 8];
        off += 9;
        if (m->id == 0 || nl >= sizeof(m->name) || len - off < nl + 2)
            return bad(err, errlen, "a zero ID, an overlong name, or truncated");
        memcpy(m->name, buf + off, nl);
        off += nl;
        size_t ul = (size_t)buf[off] | (size_t)buf[off + 1] << 8;
        off += 2;
        if (ul >= sizeof(m->peer_url) || len - off < ul)
            return bad(err, errlen, "an overlong URL, or truncated");
        memcpy(m->peer_url, buf + off, ul);
        off += ul;
        if (memchr(m->name, 0, nl) || node_member_parse_url(m->peer_url, ul, m->host, sizeof(m->host), &m->port))
            return bad(err, errlen, "a name with a NUL, or a peer URL that is not http://HOST:PORT");
        for (size_t j = 0; j < i; j++)
            if (out[j].id == m->id)
                return bad(err, errlen, "an ID given twice");
    }
    if (off != len)
        return bad(err, errlen, "trailing bytes");
    *n = count;
    return 0;
}
