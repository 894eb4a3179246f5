package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lockedBuffer is a bytes.Buffer safe for a command writing in one
// goroutine while the test reads in another.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serverLine is the line `simtix server` prints once it listens.
var serverLine = regexp.MustCompile(`simtix server on (http://\S+) `)

// serverOut is the server's stdout: it hands over the server's URL as soon
// as the server prints it.
type serverOut struct {
	lockedBuffer
	once sync.Once
	url  chan string
}

func (o *serverOut) Write(p []byte) (int, error) {
	n, err := o.lockedBuffer.Write(p)
	if m := serverLine.FindStringSubmatch(o.String()); m != nil {
		o.once.Do(func() { o.url <- m[1] })
	}
	return n, err
}

// testServer is `simtix server` run in-process by run(), on 127.0.0.1:0.
type testServer struct {
	URL string
	// Dir is its data directory.
	Dir    string
	Stderr *lockedBuffer
	stop   func() int
}

// Stop interrupts the server (as Ctrl-C does) and returns its exit status.
func (s *testServer) Stop() int { return s.stop() }

// File returns the path of a file of the data directory.
func (s *testServer) File(name string) string { return filepath.Join(s.Dir, name) }

// startServer runs `simtix server --data-dir dir --listen 127.0.0.1:0
// extra...` in a goroutine until Stop or the end of the test.
func startServer(t *testing.T, dir string, extra ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &serverOut{url: make(chan string, 1)}
	s := &testServer{Dir: dir, Stderr: &lockedBuffer{}}
	done := make(chan int, 1)
	args := append([]string{"server", "--data-dir", dir, "--listen", "127.0.0.1:0"}, extra...)
	go func() { done <- run(ctx, args, out, s.Stderr) }()
	var once sync.Once
	code := -1
	s.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("the server did not stop: %s", s.Stderr)
			}
		})
		return code
	}
	t.Cleanup(func() { s.Stop() })
	select {
	case s.URL = <-out.url:
	case code := <-done:
		cancel()
		t.Fatalf("simtix server exited with %d before listening: %s", code, s.Stderr)
	case <-time.After(30 * time.Second):
		s.Stop()
		t.Fatalf("simtix server did not start: %s", s.Stderr)
	}
	return s
}

// simtixOK runs the command line and requires exit status 0.
func simtixOK(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := simtix(t, args...)
	require.Equal(t, exitOK, code, "%v:\n%s%s", args, errOut, out)
	return out
}

// decodeJSON decodes a command's --json document, requiring that it be one.
func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader([]byte(out)))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&v), out)
	require.False(t, dec.More(), "one JSON document: %s", out)
	return v
}
