/* tests/bench/raft_bench.c — placeholder */
int main(void)
{
    return 0;
}
