package shmvar_test

// Permissions: a segment created 0600 by root, opened by an unprivileged
// user through setpriv, in both languages; and the owner and mode checks
// the commands that write apply.

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
)

// asNobody runs a command as uid/gid 65534 and returns its exit status and output.
func asNobody(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), stdout.String(), stderr.String()
	} else if err != nil {
		t.Fatalf("setpriv: %v", err)
	}
	return 0, stdout.String(), stderr.String()
}

// publicCopies copies both peers into a directory any user can read, since
// the checkout itself may not be.
func publicCopies(t *testing.T) (goPeer, javaJar string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "shmvar-perm-") // t.TempDir's parent is private
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	cp := func(from, to string, mode os.FileMode) string {
		in, err := os.Open(from)
		if err != nil {
			t.Fatalf("%v (run make build first)", err)
		}
		defer in.Close()
		out, err := os.OpenFile(filepath.Join(dir, to), os.O_CREATE|os.O_WRONLY, mode)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		io.Copy(out, in)
		return out.Name()
	}
	root := repoRoot(t)
	return cp(filepath.Join(root, "bin", "go-peer"), "go-peer", 0o755), cp(filepath.Join(root, "target", "java-peer.jar"), "java-peer.jar", 0o644)
}

func TestUnprivilegedUserGetsPermissionErrorInBothLanguages(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root to create a segment as one user and open it as another")
	}
	goPeer, jar := publicCopies(t)
	key := testKey(t)
	mustCreateCounter(t, key) // mode 0600, owned by root
	k := shmvar.FormatKey(key)
	for _, peer := range [][]string{{goPeer}, {"java", "-jar", jar}} {
		code, out, errOut := asNobody(t, append(peer, "get", "--key", k)...)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "EACCES") || !strings.Contains(errOut, "permission denied") {
			t.Fatalf("%s get as nobody: exit %d, stdout %q, stderr %q; want one EACCES line", peer[0], code, out, errOut)
		}
	}
}

func TestWritersRefuseForeignOwnerAndWorldWritableModeUnlessAccepted(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root to create a segment as one user and open it as another")
	}
	goPeer, jar := publicCopies(t)
	key := testKey(t)
	v, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{Mode: 0o666})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	k := shmvar.FormatKey(key)
	for _, peer := range [][]string{{goPeer}, {"java", "-jar", jar}} {
		// Reading is allowed: it attaches read-only.
		if code, _, errOut := asNobody(t, append(peer, "get", "--key", k)...); code != 0 {
			t.Fatalf("%s get as nobody: %s", peer[0], errOut)
		}
		code, _, errOut := asNobody(t, append(peer, "set", "--key", k, "value: 1")...)
		if code != 1 || !strings.Contains(errOut, "segment permission refused: segment is owned by uid 0, this process runs as uid 65534") {
			t.Fatalf("%s set as nobody: exit %d, %q", peer[0], code, errOut)
		}
		code, _, errOut = asNobody(t, append(peer, "set", "--key", k, "--any-owner", "value: 2")...)
		if code != 1 || !strings.Contains(errOut, "segment mode 0666 lets any user write it") {
			t.Fatalf("%s set --any-owner as nobody: exit %d, %q", peer[0], code, errOut)
		}
		if code, _, errOut := asNobody(t, append(peer, "set", "--key", k, "--any-owner", "--any-mode", "value: 3")...); code != 0 {
			t.Fatalf("%s set --any-owner --any-mode as nobody: %s", peer[0], errOut)
		}
	}
	if got, _ := v.Get(); got.GetValue() != 3 {
		t.Fatalf("value = %d, want 3", got.GetValue())
	}
	// The library refuses too, with an error errors.Is can match.
	if _, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{}); err == nil || !strings.Contains(err.Error(), "0666") {
		t.Fatalf("Open of a world-writable segment: %v", err)
	}
}

func TestFilePermissionsInBothLanguages(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root to create a file as one user and open it as another")
	}
	goPeer, jar := publicCopies(t)
	dir := filepath.Dir(goPeer) // readable by all, like the copies
	private := filepath.Join(dir, "private.svar")
	v, err := shmvar.CreateFile[*examplespb.Counter](private, shmvar.Options{}) // 0600, root's
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	shared := filepath.Join(dir, "shared.svar")
	w, err := shmvar.CreateFile[*examplespb.Counter](shared, shmvar.Options{Mode: 0o666})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, peer := range [][]string{{goPeer}, {"java", "-jar", jar}} {
		code, _, errOut := asNobody(t, append(peer, "get", "--file", private)...)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "EACCES") {
			t.Fatalf("%s get --file of a 0600 root file as nobody: exit %d, %q", peer[0], code, errOut)
		}
		code, _, errOut = asNobody(t, append(peer, "set", "--file", shared, "value: 1")...)
		if code != 1 || !strings.Contains(errOut, "file is owned by uid 0, this process runs as uid 65534") {
			t.Fatalf("%s set --file of root's 0666 file as nobody: exit %d, %q", peer[0], code, errOut)
		}
		if code, _, errOut := asNobody(t, append(peer, "set", "--file", shared, "--any-owner", "--any-mode", "value: 2")...); code != 0 {
			t.Fatalf("%s set --file --any-owner --any-mode as nobody: %s", peer[0], errOut)
		}
	}
	if got, _ := w.Get(); got.GetValue() != 2 {
		t.Fatalf("value = %d, want 2", got.GetValue())
	}
}
