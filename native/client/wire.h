/* The socket side (docs/protocol.md): frames [u32 BE length][u8 kind][payload], and descriptor passing. */
#ifndef LOCKD_FAST_WIRE_H
#define LOCKD_FAST_WIRE_H
#include <stddef.h>

enum { KIND_JSON = 0, KIND_STDOUT = 1, KIND_STDERR = 2, KIND_STDIN = 3 };
#define MAX_JSON_FRAME (64u * 1024 * 1024)
#define MAX_DATA_FRAME (1024u * 1024)

/* -1 when nothing listens there (or any other connect error: the Node CLI then says what it is). */
int connect_unix(const char *path);
/* hello and the request in one write (the pipelined handshake); 0 on success. */
int send_two_json(int sock, const char *a, size_t an, const char *b, size_t bn);
int send_json(int sock, const char *json, size_t n);
int send_frame(int sock, int kind, const char *data, size_t n);
/* One sendmsg: a single 0 byte carrying the descriptors (SCM_RIGHTS). 0 on success, -1 with errno. */
int send_fds(int sock, const int *fds, int n);

typedef struct {
  char *p;
  size_t start, end, cap;
  char error[160];
} frame_reader;

typedef struct {
  int kind;
  const char *data; /* valid until the next reader call */
  size_t len;
} frame;

enum { FRAME_NONE, FRAME_OK, FRAME_ERROR };

void reader_init(frame_reader *r);
void reader_free(frame_reader *r);
/* Read what the socket has (at most 64 KiB): bytes read, 0 at EOF, -1 on error. */
int reader_fill(frame_reader *r, int sock);
/* The next complete frame; FRAME_ERROR (r->error says why) for an unknown kind or a length over its limit. */
int reader_next(frame_reader *r, frame *f);

#endif
