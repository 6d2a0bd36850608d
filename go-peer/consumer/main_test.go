package main

import (
	"bytes"
	"errors"
	"math/rand"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"example.com/acme/inventory/inventorypb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
)

// testKey returns a key no segment uses (0x5b000000 and up) and removes what
// is under it when the test ends.
func testKey(t *testing.T) uint32 {
	t.Helper()
	for {
		key := uint32(0x5b000000 | rand.Int31n(0xffffff))
		if _, err := unix.SysvShmGet(int(key), 0, 0); errors.Is(err, unix.ENOENT) {
			t.Cleanup(func() { shmvar.RemoveKey(key) })
			return key
		}
	}
}

// TestProcessesStartedTogetherShareOneInventory starts several inventory
// processes at once on a key nobody uses: exactly one creates the variable,
// and every unit each of them adds is in it.
func TestProcessesStartedTogetherShareOneInventory(t *testing.T) {
	const processes, count = 4, 200
	bin := filepath.Join(t.TempDir(), "inventory")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	key := testKey(t)
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, processes)
	errs := make([]error, processes)
	cmds := make([]*exec.Cmd, processes)
	for i := range cmds {
		cmds[i] = exec.Command(bin, "--key", shmvar.FormatKey(key), "--item", "apples", "--add", "1",
			"--count", strconv.Itoa(count), "--by", "proc"+string(rune('a'+i)))
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
	}
	for i, cmd := range cmds {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = cmd.Run() }()
	}
	wg.Wait()
	creators := 0
	for i := range cmds {
		if errs[i] != nil {
			t.Fatalf("process %d: %v: %s", i, errs[i], outs[i].String())
		}
		if strings.HasPrefix(outs[i].String(), "created=true ") {
			creators++
		}
	}
	if creators != 1 {
		t.Fatalf("%d processes created the variable, want exactly 1", creators)
	}

	v, err := shmvar.Open[*inventorypb.Inventory](key, shmvar.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	inv, err := v.Get()
	if err != nil {
		t.Fatal(err)
	}
	if inv.Stock["apples"] != processes*count || !strings.HasPrefix(inv.UpdatedBy, "proc") || inv.UpdatedAt.AsTime().IsZero() {
		t.Fatalf("inventory = %v; want %d apples, updated by one of the processes, with a time", inv, processes*count)
	}
	if got := v.Descriptor().GetMessageType(); got != "acme.inventory.v1.Inventory" {
		t.Fatalf("segment holds %s", got)
	}

	// A process without the type compiled in reads it with the stored schema,
	// Timestamp's file included.
	dyn, err := shmvar.OpenAny(key, shmvar.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dyn.Close()
	m, err := dyn.Get()
	if err != nil {
		t.Fatal(err)
	}
	fields := m.ProtoReflect().Descriptor().Fields()
	at := m.ProtoReflect().Get(fields.ByName("updated_at")).Message()
	if at.Descriptor().FullName() != "google.protobuf.Timestamp" || at.Get(at.Descriptor().Fields().ByName("seconds")).Int() != inv.UpdatedAt.Seconds {
		t.Fatalf("updated_at through the stored schema = %v, want %v", at, inv.UpdatedAt)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{}, {"--key", "010", "--item", "x"}, {"--key", "0x5d000001"}, {"--key", "0x5d000001", "--item", "x", "extra"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || !strings.HasPrefix(errOut.String(), "usage: ") {
			t.Errorf("inventory %v: exit %d, %q; want 2 and the usage line", args, code, errOut.String())
		}
	}
}
