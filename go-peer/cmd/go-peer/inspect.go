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
)

// cmdInspect prints what the segment's header, lock and attachment table
// say, one "name: value" line each, or one JSON object (README, "JSON
// output"); java-peer prints the same bytes.
func cmdInspect(p *parsed, stdout io.Writer) error {
	t := newTarget(p)
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
	var attachments []shmvar.Attachment
	if lock.LivenessKnown {
		if attachments, err = v.Attachments(); err != nil {
			return err
		}
	}
	value, valueErr := v.Get()
	created := time.Unix(0, d.GetCreatedUnixNanos()).UTC().Format(time.RFC3339)
	mode := fmt.Sprintf("%04o", info.Mode)
	lim := kernelLimits()
	if p.str("format") == "json" {
		o := &jsonObject{}
		if t.file != "" {
			o.str("file", t.file)
		} else {
			o.str("key", shmvar.FormatKey(t.key))
			o.num("shmid", int64(info.ID))
		}
		o.num("size", int64(info.Size))
		o.raw("owner", (&jsonObject{}).num("uid", int64(info.UID)).num("gid", int64(info.GID)).str("mode", mode).end())
		if t.file == "" {
			o.num("attached", int64(info.Nattach))
		}
		o.str("layoutVersion", shmvar.FormatVersion(d.GetLayoutVersion()))
		o.str("type", d.GetMessageType())
		o.num("capacity", int64(v.Capacity()))
		o.raw("created", (&jsonObject{}).str("time", created).str("creator", d.GetCreator()).num("pid", int64(d.GetCreatorPid())).end())
		o.unum("generation", gen)
		o.raw("lock", lockJSON(lock))
		o.unum("contended", lock.Contended)
		o.unum("takeovers", lock.Takeovers)
		if lock.LivenessKnown {
			var list []string
			for _, a := range attachments {
				list = append(list, attachmentJSON(a))
			}
			o.raw("attachments", "["+strings.Join(list, ",")+"]")
		} else {
			o.raw("attachments", "null")
		}
		if valueErr != nil {
			o.str("valueError", valueErr.Error())
		} else {
			o.raw("value", canonJSON(value.ProtoReflect()))
		}
		o.raw("kernelLimits", (&jsonObject{}).str("shmmax", lim.shmmax).str("shmall", lim.shmall).num("shmallInUse", lim.pages).
			str("shmmni", lim.shmmni).num("shmmniInUse", lim.segments).end())
		_, err := fmt.Fprintln(stdout, o.end())
		return err
	}
	w := func(name, format string, args ...any) {
		fmt.Fprintf(stdout, "%-16s "+format+"\n", append([]any{name + ":"}, args...)...)
	}
	if t.file != "" {
		w("file", "%s", t.file)
	} else {
		w("key", "%s", shmvar.FormatKey(t.key))
		w("shmid", "%d", info.ID)
	}
	w("size", "%d bytes", info.Size)
	w("owner", "uid=%d gid=%d mode=%s", info.UID, info.GID, mode)
	if t.file == "" {
		w("attached", "%d process(es)", info.Nattach)
	}
	w("layout version", "%s", shmvar.FormatVersion(d.GetLayoutVersion()))
	w("type", "%s", d.GetMessageType())
	w("capacity", "%d bytes", v.Capacity())
	w("created", "%s by %s pid %d", created, d.GetCreator(), d.GetCreatorPid())
	w("generation", "%d", gen)
	if lock.Word == 0 {
		w("lock", "free")
	} else {
		w("lock", "held by %s (%s), word=0x%016x", lock.HolderString(), lock.HolderLiveness(), lock.Word)
	}
	w("contended", "%d", lock.Contended)
	w("takeovers", "%d", lock.Takeovers)
	if lock.LivenessKnown {
		w("attachments", "%d of %d in use", len(attachments), shmvar.AttachmentCount)
		for _, a := range attachments {
			w(fmt.Sprintf("attachment %d", a.Index), "%s", a)
		}
	} else {
		w("attachments", "unknown (no semaphore set under this key)")
	}
	if valueErr != nil {
		w("value", "unreadable: %v", valueErr)
	} else {
		w("value", "%s", canonText(value.ProtoReflect()))
	}
	w("kernel limits", "shmmax=%s bytes per segment, shmall=%s pages in all (%d in use), shmmni=%s segments (%d in use)",
		lim.shmmax, lim.shmall, lim.pages, lim.shmmni, lim.segments)
	return nil
}

// lockJSON is the lock word as inspect and ls print it in JSON.
func lockJSON(lock shmvar.LockState) string {
	o := &jsonObject{}
	o.boolean("held", lock.Word != 0)
	if lock.Word != 0 {
		o.str("word", fmt.Sprintf("0x%016x", lock.Word))
		o.str("holder", lock.HolderString())
		o.str("liveness", lock.HolderLiveness())
	}
	return o.end()
}

func attachmentJSON(a shmvar.Attachment) string {
	return (&jsonObject{}).num("index", int64(a.Index)).num("pid", int64(a.Pid)).boolean("otherNamespace", a.OtherNamespace).end()
}

// limits are the kernel's System V limits and how much of them is used.
type limits struct {
	shmmax, shmall, shmmni string
	pages, segments        int64
}

func kernelLimits() limits {
	read := func(name string) string {
		b, err := os.ReadFile("/proc/sys/kernel/" + name)
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(string(b))
	}
	segments, bytes := int64(0), uint64(0)
	if data, err := os.ReadFile("/proc/sysvipc/shm"); err == nil {
		for _, line := range strings.Split(string(data), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 3 {
				segments++
				n, _ := strconv.ParseUint(f[3], 10, 64)
				bytes += n
			}
		}
	}
	pages := (bytes + 4095) / 4096
	return limits{read("shmmax"), read("shmall"), read("shmmni"), int64(pages), segments}
}

// jsonObject writes one JSON object with its members in the order given.
type jsonObject struct {
	b strings.Builder
}

func (o *jsonObject) member(name string) {
	if o.b.Len() == 0 {
		o.b.WriteByte('{')
	} else {
		o.b.WriteByte(',')
	}
	jsonString(&o.b, name)
	o.b.WriteByte(':')
}

func (o *jsonObject) str(name, v string) *jsonObject {
	o.member(name)
	jsonString(&o.b, v)
	return o
}

func (o *jsonObject) num(name string, v int64) *jsonObject {
	o.member(name)
	o.b.WriteString(strconv.FormatInt(v, 10))
	return o
}

func (o *jsonObject) unum(name string, v uint64) *jsonObject {
	o.member(name)
	o.b.WriteString(strconv.FormatUint(v, 10))
	return o
}

func (o *jsonObject) boolean(name string, v bool) *jsonObject {
	o.member(name)
	o.b.WriteString(strconv.FormatBool(v))
	return o
}

// raw adds a member whose value is already JSON.
func (o *jsonObject) raw(name, json string) *jsonObject {
	o.member(name)
	o.b.WriteString(json)
	return o
}

func (o *jsonObject) end() string {
	if o.b.Len() == 0 {
		return "{}"
	}
	return o.b.String() + "}"
}
