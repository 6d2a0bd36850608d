package main

import (
	"fmt"
	"io"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvar"
	"google.golang.org/protobuf/encoding/prototext"
)

func cmdInspect(args []string, stdout io.Writer) error {
	fs := newFlags("inspect")
	var key keyFlag
	fs.Var(&key, "key", "")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if err := requireKey(&key); err != nil {
		return err
	}
	v, err := shmvar.OpenAny(key.key, reader)
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
	w("key", "%s", shmvar.FormatKey(key.key))
	w("shmid", "%d", info.ID)
	w("size", "%d bytes", info.Size)
	w("owner", "uid=%d gid=%d mode=%04o", info.UID, info.GID, info.Mode)
	w("attached", "%d process(es)", info.Nattach)
	w("layout version", "%s", shmvar.FormatVersion(d.GetLayoutVersion()))
	w("type", "%s", d.GetMessageType())
	w("capacity", "%d bytes", v.Capacity())
	w("created", "%s by %s pid %d", time.Unix(0, d.GetCreatedUnixNanos()).UTC().Format(time.RFC3339), d.GetCreator(), d.GetCreatorPid())
	w("generation", "%d", gen)
	if lock.Word == 0 {
		w("lock", "free")
	} else {
		state := "alive"
		if !lock.HolderAlive {
			state = "dead"
		}
		w("lock", "held by pid %d (%s), word=0x%016x", lock.HolderPid, state, lock.Word)
	}
	w("contended", "%d", lock.Contended)
	w("takeovers", "%d", lock.Takeovers)
	value, err := v.Get()
	if err != nil {
		w("value", "unreadable: %v", err)
		return nil
	}
	text, _ := prototext.MarshalOptions{}.Marshal(value)
	w("value", "%s", text)
	return nil
}
