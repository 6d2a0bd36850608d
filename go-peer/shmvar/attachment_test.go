package shmvar_test

// The attachment table: entries claimed and given back, the table's limit,
// a holder that lost the lock, the owner policy and the semaphore set's
// life beside its segment.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
)

// semSetExists reports whether a semaphore set is under key.
func semSetExists(t *testing.T, key int32) bool {
	t.Helper()
	_, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), 0, 0)
	if errno != 0 && errno != unix.ENOENT {
		t.Fatalf("semget: %v", errno)
	}
	return errno == 0
}

func TestHolderThatLostTheLockNeverPublishes(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	if err := v.Set(&examplespb.Counter{Value: 1}); err != nil {
		t.Fatal(err)
	}
	robber, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer robber.Close()

	// A protocol-breaking peer frees the lock under the holder and commits
	// its own value before the holder's commit.
	_, err = v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
		poke(t, key, func(mem []byte) { putWord(mem, shmvar.LockWordOffset, 0) })
		if err := robber.Set(&examplespb.Counter{Value: 42, LastWriter: "robber"}); err != nil {
			t.Fatal(err)
		}
		c.Value = 2
		return c, nil
	})
	if !errors.Is(err, shmvar.ErrLockLost) || !strings.Contains(err.Error(), "nothing was committed") {
		t.Fatalf("commit after the lock was taken: %v; want ErrLockLost", err)
	}
	got, err := robber.Get()
	if g, _ := robber.Generation(); err != nil || got.GetValue() != 42 || g != 2 {
		t.Fatalf("after the robbed commit: %v, %v, generation %d; want the robber's 42 at generation 2", got, err, g)
	}
	// The holder reads the robber's value, not a cached one of its own.
	if mine, err := v.Get(); err != nil || mine.GetValue() != 42 {
		t.Fatalf("holder reads %v, %v; want 42", mine, err)
	}

	// A robber that only takes the word: the holder neither writes nor publishes.
	err = v.Mutate(func(c *examplespb.Counter) error {
		poke(t, key, func(mem []byte) { putWord(mem, shmvar.LockWordOffset, robber.Identity()) })
		c.Value = 3
		return nil
	})
	if !errors.Is(err, shmvar.ErrLockLost) {
		t.Fatalf("Mutate after the lock word was taken: %v; want ErrLockLost", err)
	}
	if g, _ := v.Generation(); g != 2 {
		t.Fatalf("generation %d after a lost lock; want 2", g)
	}
	if got, err := robber.Get(); err != nil || got.GetValue() != 42 {
		t.Fatalf("value after a lost lock: %v, %v; want 42", got, err)
	}
	poke(t, key, func(mem []byte) { putWord(mem, shmvar.LockWordOffset, 0) })
	if _, err := v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) { c.Value++; return c, nil }); err != nil {
		t.Fatalf("update after the robber is gone: %v", err)
	}
}

func TestAttachmentTableFillsUpAndFreesEntries(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	var opened []*shmvar.Var[*examplespb.Counter]
	defer func() {
		for _, o := range opened {
			o.Close()
		}
	}()
	seen := map[uint64]bool{v.Identity(): true}
	for len(opened) < shmvar.AttachmentCount-1 {
		o, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
		if err != nil {
			t.Fatalf("attachment %d: %v", len(opened)+2, err)
		}
		if seen[o.Identity()] {
			t.Fatalf("identity 0x%x given twice", o.Identity())
		}
		seen[o.Identity()] = true
		opened = append(opened, o)
	}
	_, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if !errors.Is(err, shmvar.ErrAttachmentsFull) || !strings.Contains(err.Error(), fmt.Sprintf("all %d attachment entries", shmvar.AttachmentCount)) {
		t.Fatalf("attachment %d: %v; want ErrAttachmentsFull naming the limit", shmvar.AttachmentCount+1, err)
	}
	reader, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("a read-only attachment needs no entry: %v", err)
	}
	defer reader.Close()
	if live, _ := reader.Attachments(); len(live) != shmvar.AttachmentCount {
		t.Fatalf("%d live attachments listed, want %d", len(live), shmvar.AttachmentCount)
	}
	freed := opened[10].Identity() >> 32
	opened[10].Close()
	again, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatalf("open after one closed: %v", err)
	}
	opened[10] = again
	if again.Identity()>>32 != freed || seen[again.Identity()] {
		t.Fatalf("reopened as 0x%x; want entry %d under a new incarnation", again.Identity(), freed)
	}
	if _, err := again.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) { c.Value++; return c, nil }); err != nil {
		t.Fatal(err)
	}
}

// TestCreatorUidCountsAsOwner: a creator can hand its segment to our uid
// with IPC_SET and keep full access; writers refuse it unless told to
// accept another owner.
func TestCreatorUidCountsAsOwner(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Fatalf("needs root to create a segment as another user; running as uid %d", unix.Geteuid())
	}
	goPeer, _ := publicCopies(t)
	key := testKey(t)
	k := shmvar.FormatKey(key)
	if code, _, errOut := asNobody(t, goPeer, "create", "--key", k); code != 0 {
		t.Fatalf("create as nobody: %s", errOut)
	}
	id, err := unix.SysvShmGet(int(key), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
		t.Fatal(err)
	}
	desc.Perm.Uid = 0 // what the creator could do itself
	if _, err := unix.SysvShmCtl(id, unix.IPC_SET, &desc); err != nil {
		t.Fatal(err)
	}
	_, err = shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if !errors.Is(err, shmvar.ErrPermission) || !strings.Contains(err.Error(), "owned by uid 0 (created by uid 65534)") {
		t.Fatalf("open of a segment created by another user: %v; want a permission error naming the creator", err)
	}
	for _, peer := range [][]string{{goPeerBin(t)}, {javaPeer(t)}} {
		cmd := exec.Command(peer[0], "incr", "--key", k, "--count", "1")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "created by uid 65534") || strings.Count(string(out), "\n") != 1 {
			t.Fatalf("%s incr on a spoofed owner: %v: %q; want one line naming the creator", peer[0], err, out)
		}
	}
	v, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{AnyOwner: true})
	if err != nil {
		t.Fatalf("with AnyOwner: %v", err)
	}
	v.Close()
}

func TestSemaphoreSetGoesWithItsSegment(t *testing.T) {
	key := testKey(t)
	v, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !semSetExists(t, key) {
		t.Fatal("create made no semaphore set")
	}
	if err := v.Remove(); err != nil {
		t.Fatal(err)
	}
	if semSetExists(t, key) {
		t.Fatal("Remove left the semaphore set")
	}

	// An ephemeral segment's set goes with its last attachment.
	e, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if !semSetExists(t, key) {
		t.Fatal("ephemeral create made no semaphore set")
	}
	e.Close()
	if semSetExists(t, key) {
		t.Fatal("the last close of an ephemeral segment left its semaphore set")
	}

	// A set left alone (its ephemeral segment's users died): create replaces
	// it when no entry is held, and RemoveKey removes it.
	orphan, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(shmvar.AttachmentCount), unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if errno != 0 {
		t.Fatal(errno)
	}
	c, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatalf("create over a left-over semaphore set: %v", err)
	}
	c.Close()
	if _, _, errno := unix.Syscall6(unix.SYS_SEMCTL, orphan, 0, 12 /* GETVAL */, 0, 0, 0); errno == 0 {
		t.Fatal("the left-over set is still there")
	}
	if err := shmvar.RemoveKey(key); err != nil {
		t.Fatal(err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(shmvar.AttachmentCount), unix.IPC_CREAT|unix.IPC_EXCL|0o600); errno != 0 {
		t.Fatal(errno)
	}
	if err := shmvar.RemoveKey(key); err != nil || semSetExists(t, key) {
		t.Fatalf("RemoveKey of a set alone: %v", err)
	}
	if err := shmvar.RemoveKey(key); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("RemoveKey of nothing: %v; want ENOENT", err)
	}
}

// TestKilledFileHolderIsTakenOver: the kernel drops a killed holder's lock
// on its entry of a mapped file, and a waiter takes over.
func TestKilledFileHolderIsTakenOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter.svar")
	v, err := shmvar.CreateFile[*examplespb.Counter](path, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	other, err := shmvar.OpenFile[*examplespb.Counter](path, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Identity() == v.Identity() {
		t.Fatalf("two attachments of a file share identity 0x%x", v.Identity())
	}
	other.Close()
	holder := exec.Command(goPeerBin(t), "incr", "--file", path, "--count", "1", "--hold", "60s")
	var out bytes.Buffer
	holder.Stdout, holder.Stderr = &out, &out
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Process.Kill()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if s, _ := v.Lock(); s.Word != 0 {
			if !s.HolderAlive || s.Holder.Pid != int32(holder.Process.Pid) || s.Holder.OtherNamespace {
				t.Fatalf("lock state %+v; want held by pid %d, alive", s, holder.Process.Pid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("go-peer never took the lock: %s", out.String())
		}
	}
	if _, err := v.TryUpdate(100*time.Millisecond, func(c *examplespb.Counter) (*examplespb.Counter, error) { return c, nil }); !errors.Is(err, shmvar.ErrTimeout) {
		t.Fatalf("against a live file holder: %v; want a timeout", err)
	}
	holder.Process.Signal(syscall.SIGKILL)
	holder.Wait()
	if _, err := v.TryUpdate(5*time.Second, func(c *examplespb.Counter) (*examplespb.Counter, error) { c.Value++; return c, nil }); err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	if s, _ := v.Lock(); s.Takeovers != 1 {
		t.Fatalf("takeovers=%d, want 1", s.Takeovers)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestRefusedTypedOpenClaimsNothingAndRemovesNothing(t *testing.T) {
	key := testKey(t)
	mustCreateAllTypes(t, key)
	for _, opts := range []shmvar.Options{{}, {Ephemeral: true}} {
		if _, err := shmvar.Open[*examplespb.Counter](key, opts); !errors.Is(err, shmvar.ErrTypeMismatch) {
			t.Fatalf("Open of the wrong type with %+v: %v", opts, err)
		}
	}
	v, err := shmvar.Open[*examplespb.AllTypes](key, shmvar.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the segment after refused opens: %v", err)
	}
	defer v.Close()
	if live, _ := v.Attachments(); len(live) != 1 {
		t.Fatalf("%d live attachments after two refused opens; want the creator's only", len(live))
	}
	if info, _ := v.Stat(); info.Removed {
		t.Fatal("a refused ephemeral open marked the segment for removal")
	}
}

// TestLastClosersOfAnEphemeralSegmentRemoveItsSet closes the last two
// attachments of ephemeral segments at the same time: one of them must
// remove the semaphore set.
func TestLastClosersOfAnEphemeralSegmentRemoveItsSet(t *testing.T) {
	for round := 0; round < 100; round++ {
		key := testKey(t)
		a, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { a.Close(); close(done) }()
		b.Close()
		<-done
		if semSetExists(t, key) {
			t.Fatalf("round %d: the semaphore set outlived its ephemeral segment", round)
		}
	}
}

// TestCreateLeavesAnotherProgramsSemaphoreSetAlone: a set under the key
// that is not one of ours (not 64 semaphores) is never removed.
func TestCreateLeavesAnotherProgramsSemaphoreSetAlone(t *testing.T) {
	key := testKey(t)
	foreign, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), 10, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer unix.Syscall6(unix.SYS_SEMCTL, foreign, 0, unix.IPC_RMID, 0, 0, 0)
	for _, peer := range []string{goPeerBin(t), javaPeer(t)} {
		out, err := exec.Command(peer, "create", "--key", shmvar.FormatKey(key)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "EEXIST") {
			t.Fatalf("%s create over another program's semaphore set: %v: %s", filepath.Base(peer), err, out)
		}
		if _, _, errno := unix.Syscall6(unix.SYS_SEMCTL, foreign, 0, 12 /* GETVAL */, 0, 0, 0); errno != 0 {
			t.Fatalf("%s create removed another program's semaphore set: %v", filepath.Base(peer), errno)
		}
		if _, err := unix.SysvShmGet(int(key), 0, 0); !errors.Is(err, unix.ENOENT) {
			t.Fatalf("%s left a segment behind after a refused create: %v", filepath.Base(peer), err)
		}
	}
}

// TestInspectSaysTheSameInBothLanguages compares the two commands' inspect
// output for a segment held in another PID namespace, and once its
// semaphore set is gone; only the value's text may differ (protobuf-go
// varies its spacing on purpose).
func TestInspectSaysTheSameInBothLanguages(t *testing.T) {
	nsTools(t)
	key := testKey(t)
	k := shmvar.FormatKey(key)
	mustCreateCounter(t, key)
	holder := exec.Command("unshare", "--pid", "--fork", "--kill-child", "--mount-proc", goPeerBin(t), "incr", "--key", k, "--count", "1", "--hold", "60s")
	var holderOut bytes.Buffer
	holder.Stdout, holder.Stderr = &holderOut, &holderOut
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	v, _ := shmvar.Open[*examplespb.Counter](key, shmvar.Options{ReadOnly: true})
	defer v.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if s, _ := v.Lock(); s.Word != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("go-peer never took the lock: %s", holderOut.String())
		}
	}
	inspect := func(peer string) string {
		out, err := exec.Command(peer, "inspect", "--key", k).Output()
		if err != nil {
			t.Fatalf("%s inspect: %v", peer, err)
		}
		var keep []string
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(line, "value:") && !strings.HasPrefix(line, "kernel limits:") && !strings.HasPrefix(line, "attached:") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
	compare := func(want ...string) {
		t.Helper()
		goOut, javaOut := inspect(goPeerBin(t)), inspect(javaPeer(t))
		if goOut != javaOut {
			t.Fatalf("inspect differs:\ngo:\n%s\njava:\n%s", goOut, javaOut)
		}
		for _, w := range want {
			if !strings.Contains(goOut, w) {
				t.Fatalf("inspect lacks %q:\n%s", w, goOut)
			}
		}
	}
	compare("lock:            held by attachment 1, pid 1 in another PID namespace (alive), word=0x0000000100000001",
		"attachments:     2 of 64 in use", "attachment 0:    pid "+fmt.Sprint(os.Getpid()), "attachment 1:    pid 1 in another PID namespace")
	id, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), 0, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	unix.Syscall6(unix.SYS_SEMCTL, id, 0, unix.IPC_RMID, 0, 0, 0)
	compare("(liveness unknown), word=0x0000000100000001", "attachments:     unknown (no semaphore set under this key)")
}
