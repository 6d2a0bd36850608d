//go:build linux && (amd64 || arm64)

package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvar"
	"google.golang.org/protobuf/encoding/prototext"
)

func cmdInspect(args []string, stdout io.Writer) error {
	fs := newFlags("inspect")
	t := targetFlags(fs)
	if err := t.parse(fs, args, 0); err != nil {
		return err
	}
	v, err := t.openAny(reader)
	if err != nil {
		return err
	}
	defer v.Close()
	info, err := v.Stat()
	if err != nil {
		return err
	}
	d := v.Descriptor()
	lock, err := v.Lock()
	if err != nil {
		return err
	}
	gen, err := v.Generation()
	if err != nil {
		return err
	}
	w := func(name, format string, args ...any) {
		fmt.Fprintf(stdout, "%-16s "+format+"\n", append([]any{name + ":"}, args...)...)
	}
	if t.file != "" {
		w("file", "%s", t.file)
	} else {
		w("key", "%s", shmvar.FormatKey(t.key.key))
	}
	if t.file == "" {
		w("shmid", "%d", info.ID)
	}
	w("size", "%d bytes", info.Size)
	w("owner", "uid=%d gid=%d mode=%04o", info.UID, info.GID, info.Mode)
	if t.file == "" {
		w("attached", "%d process(es)", info.Nattach)
	}
	w("layout version", "%s", shmvar.FormatVersion(d.GetLayoutVersion()))
	w("type", "%s", d.GetMessageType())
	w("capacity", "%d bytes", v.Capacity())
	w("created", "%s by %s pid %d", time.Unix(0, d.GetCreatedUnixNanos()).UTC().Format(time.RFC3339), d.GetCreator(), d.GetCreatorPid())
	w("generation", "%d", gen)
	if lock.Word == 0 {
		w("lock", "free")
	} else {
		w("lock", "held by %s (%s), word=0x%016x", lock.HolderString(), lock.HolderLiveness(), lock.Word)
	}
	w("contended", "%d", lock.Contended)
	w("takeovers", "%d", lock.Takeovers)
	if lock.LivenessKnown {
		attachments, err := v.Attachments()
		if err != nil {
			return err
		}
		w("attachments", "%d of %d in use", len(attachments), shmvar.AttachmentCount)
		for _, a := range attachments {
			w(fmt.Sprintf("attachment %d", a.Index), "%s", a)
		}
	} else {
		w("attachments", "unknown (no semaphore set under this key)")
	}
	value, err := v.Get()
	if err != nil {
		w("value", "unreadable: %v", err)
	} else {
		text, _ := prototext.MarshalOptions{}.Marshal(value)
		w("value", "%s", text)
	}
	limits(w)
	return nil
}

// limits prints the kernel's System V limits and how much of them is used.
func limits(w func(name, format string, args ...any)) {
	read := func(name string) string {
		b, err := os.ReadFile("/proc/sys/kernel/" + name)
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(string(b))
	}
	segments, bytes := 0, uint64(0)
	if data, err := os.ReadFile("/proc/sysvipc/shm"); err == nil {
		for _, line := range strings.Split(string(data), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 3 {
				segments++
				n, _ := strconv.ParseUint(f[3], 10, 64)
				bytes += n
			}
		}
	}
	pages := (bytes + uint64(os.Getpagesize()) - 1) / uint64(os.Getpagesize())
	w("kernel limits", "shmmax=%s bytes per segment, shmall=%s pages in all (%d in use), shmmni=%s segments (%d in use)",
		read("shmmax"), read("shmall"), pages, read("shmmni"), segments)
}
