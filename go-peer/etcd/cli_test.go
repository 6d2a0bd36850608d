package etcdvar_test

import (
	"bufio"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// peer runs go-peer with args and returns its stdout, stderr and exit status.
func peer(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(goPeer, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if e, ok := err.(*exec.ExitError); ok {
		code = e.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func mustPeer(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := peer(t, args...)
	if code != 0 {
		t.Fatalf("go-peer %v: exit %d: %s", args, code, errOut)
	}
	return out
}

var valueLine = regexp.MustCompile(`value: *(\d+)`)

func counterValue(t *testing.T, address string) int {
	t.Helper()
	m := valueLine.FindStringSubmatch(mustPeer(t, "get", "--etcd", address))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestShouldRunTheCommandsOnEtcd(t *testing.T) {
	addr := shared(t).address(t)
	mustPeer(t, "create", "--etcd", addr)
	_, errOut, code := peer(t, "create", "--etcd", addr)
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "variable exists") {
		t.Fatalf("second create: exit %d, %q; want exit 1 and one line", code, errOut)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); mustPeer(t, "incr", "--etcd", addr, "--count", "100") }()
	}
	wg.Wait()
	if n := counterValue(t, addr); n != 200 {
		t.Fatalf("two incr --count 100 at once: %d; want 200", n)
	}
	prefix := addr[:strings.LastIndex(addr, "/")]
	if out := mustPeer(t, "ls", "--etcd", prefix); !regexp.MustCompile(regexp.QuoteMeta(addr) + `\s+shmvar.examples.v1.Counter\s+4096\s+200\s+go\n`).MatchString(out) {
		t.Fatalf("ls --etcd %s:\n%s\nwant a line for %s at generation 200", prefix, out, addr)
	}
	mustPeer(t, "set", "--etcd", addr, `{"value": 7}`)
	if n := counterValue(t, addr); n != 7 {
		t.Fatalf("after set: %d; want 7", n)
	}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"get", "--etcd", addr, "--type", "shmvar.examples.v1.Point"}, 1, "payload type mismatch"},
		{[]string{"inspect", "--etcd", addr}, 2, "--etcd is taken by"},
		{[]string{"ls", "--etcd", prefix + "/.x"}, 1, "kept for the variable's own keys"},
		{[]string{"get", "--etcd", "etcd://127.0.0.1/x"}, 1, "not host:port"},
		{[]string{"get", "--etcd", "127.0.0.1:1/x"}, 2, "write etcd://host:port"},
		{[]string{"set", "--etcd", addr, "value: x"}, 2, "not a valid shmvar.examples.v1.Counter"},
	} {
		_, errOut, code := peer(t, c.args...)
		if code != c.code || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.says) {
			t.Errorf("go-peer %v: exit %d, %q; want exit %d and one line saying %q", c.args, code, errOut, c.code, c.says)
		}
	}
	mustPeer(t, "rm", "--etcd", addr)
	if _, errOut, code := peer(t, "get", "--etcd", addr); code != 1 || !strings.Contains(errOut, "no such variable") {
		t.Fatalf("get after rm: exit %d, %q", code, errOut)
	}
}

// TestShouldLoseNoCommitWhenAWriterIsKilled kills an incr with SIGKILL in
// the middle of its updates: every commit it reported is in the value, it
// blocks nobody, and at most the one in flight landed unreported.
func TestShouldLoseNoCommitWhenAWriterIsKilled(t *testing.T) {
	addr := shared(t).address(t)
	mustPeer(t, "create", "--etcd", addr)
	victim := exec.Command(goPeer, "incr", "--etcd", addr, "--count", "100000", "--print-each")
	stdout, err := victim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	reported := 0
	for lines.Scan() {
		if n, err := fmt.Sscanf(lines.Text(), "committed %d", &reported); n != 1 || err != nil {
			t.Fatalf("incr --print-each printed %q", lines.Text())
		}
		if reported >= 50 {
			break
		}
	}
	victim.Process.Signal(syscall.SIGKILL)
	victim.Wait()
	for lines.Scan() { // what it printed before it died
		fmt.Sscanf(lines.Text(), "committed %d", &reported)
	}
	start := time.Now()
	mustPeer(t, "incr", "--etcd", addr, "--count", "100", "--timeout", "5s")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("100 increments after the kill took %v: blocked?", d)
	}
	n := counterValue(t, addr)
	if n < reported+100 || n > reported+101 {
		t.Fatalf("value %d after a writer that reported %d commits was killed and 100 more: want %d (or one more, the commit in flight)", n, reported, reported+100)
	}
}
