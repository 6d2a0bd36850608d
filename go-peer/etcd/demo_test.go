package etcdvar_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoScript runs make demo BACKING=etcd's script (bin/etcd-demo) as
// make builds it: a throwaway etcd, go-peer and java-peer incrementing one
// counter at once, the exact sum.
func TestDemoScript(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bin/etcd-demo", "bin/etcd-dev", "bin/go-peer", "target/java-peer.jar"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Fatalf("%s is missing: run make build (make test does) first", f)
		}
	}
	cmd := exec.Command(filepath.Join(root, "bin", "etcd-demo"), "100")
	cmd.WaitDelay = time.Second
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	out, err := cmd.CombinedOutput()
	timer.Stop()
	if err != nil {
		t.Fatalf("bin/etcd-demo 100: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "final value: 200 (want 200)") {
		t.Fatalf("bin/etcd-demo 100 printed:\n%s", out)
	}
}
