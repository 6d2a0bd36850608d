package etcdvar_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// etcdDev and goPeer are the binaries TestMain builds for the tests.
var etcdDev, goPeer string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "etcdvar-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	etcdDev, goPeer = filepath.Join(dir, "etcd-dev"), filepath.Join(dir, "go-peer")
	for _, args := range [][]string{{"build", "-o", etcdDev, "./cmd/etcd-dev"},
		// bin/go-peer as make build makes it: the command with the etcd backend linked in
		{"build", "-tags", "etcd_backend", "-overlay", "cmd/go-peer-etcd/overlay.json", "-o", goPeer, "github.com/shmvar/shmvar/go-peer/cmd/go-peer"}} {
		build := exec.Command("go", args...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "cannot build %s for the tests: %v\n", args[len(args)-1], err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	if sharedServer != nil {
		if err := sharedServer.close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running etcd-dev: one member or a cluster of three.
type server struct {
	t         *testing.T
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	lines     chan string
	endpoints string // host:port[,host:port...]
}

var names atomic.Int64

// launch starts etcd-dev with args and waits for READY.
func launch(args ...string) (*server, error) {
	cmd := exec.Command(etcdDev, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start etcd-dev: %v", err)
	}
	s := &server{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			s.lines <- scanner.Text()
		}
		close(s.lines)
	}()
	line := s.expect("READY ", 40*time.Second)
	if line == "" {
		s.close()
		return nil, fmt.Errorf("etcd-dev %v did not print READY within 40s; stderr: %s", args, stderr.String())
	}
	s.endpoints = strings.TrimPrefix(line, "READY ")
	return s, nil
}

// close stops the server (its stdin closing) and waits for it to remove its data.
func (s *server) close() error {
	s.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-done
		return fmt.Errorf("etcd-dev did not stop within 20s of its stdin closing")
	}
}

// startServer starts a server of the test's own; the test fails at once,
// saying why, when it cannot. It stops when the test ends.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	s, err := launch(args...)
	if err != nil {
		t.Fatal(err)
	}
	s.t = t
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

var (
	sharedMu     sync.Mutex
	sharedServer *server
	sharedErr    error
)

// shared returns the server the tests that need no server of their own
// share, each under its own names; TestMain stops it.
func shared(t *testing.T) *server {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedServer == nil && sharedErr == nil {
		sharedServer, sharedErr = launch()
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedServer
}

// expect waits for a line starting with prefix and returns it, "" on timeout.
func (s *server) expect(prefix string, d time.Duration) string {
	deadline := time.After(d)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				return ""
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-deadline:
			return ""
		}
	}
}

// do sends a command (stop N, kill N, start N) and waits for its answer.
func (s *server) do(command, answer string) {
	s.t.Helper() // servers of a test's own only
	if _, err := fmt.Fprintln(s.stdin, command); err != nil {
		s.t.Fatalf("etcd-dev %q: %v", command, err)
	}
	if s.expect(answer, 40*time.Second) == "" {
		s.t.Fatalf("etcd-dev %q: no %q within 40s", command, answer)
	}
}

// address is a fresh variable's address on s, unique in the test run.
func (s *server) address(t *testing.T) string {
	return fmt.Sprintf("etcd://%s/shmvar-test/%s-%d", s.endpoints, strings.ReplaceAll(t.Name(), "/", "-"), names.Add(1))
}
