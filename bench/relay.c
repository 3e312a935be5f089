/*
 * The floor under any broker's large-message throughput on this machine: a relay that connects
 * to a producer and a consumer on loopback and copies bytes from one to the other with blocking
 * read(2)/write(2), nothing else. bench/relay.ts compiles and runs it next to Node relays.
 *
 * usage: relay <producer port> <consumer port> <read size>
 * prints one JSON line: {"bytes":…,"seconds":…,"userSeconds":…,"systemSeconds":…}
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int connect_to(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(0x7f000001);
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("relay: connect");
    exit(1);
  }
  return s;
}

static double seconds(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: relay <producer port> <consumer port> <read size>\n");
    return 2;
  }
  int out = connect_to(atoi(argv[2]));
  int in = connect_to(atoi(argv[1]));
  size_t size = (size_t)atol(argv[3]);
  char *buf = malloc(size);
  long long total = 0;
  struct timespec t0, t1;
  int started = 0;
  for (;;) {
    ssize_t n = read(in, buf, size);
    if (n <= 0) break;
    /* The clock starts at the first byte, as in the Node relays. */
    if (!started) {
      clock_gettime(CLOCK_MONOTONIC, &t0);
      started = 1;
    }
    total += n;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(out, buf + done, (size_t)(n - done));
      if (w <= 0) {
        perror("relay: write");
        return 1;
      }
      done += w;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"bytes\":%lld,\"seconds\":%.6f,\"userSeconds\":%.6f,\"systemSeconds\":%.6f}\n", total,
         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, seconds(ru.ru_utime),
         seconds(ru.ru_stime));
  return 0;
}
