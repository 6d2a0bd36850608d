//go:build linux && (amd64 || arm64)

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/shmvar/shmvar/go-peer/shmvar"
	"google.golang.org/protobuf/proto"
)

// cmdLs lists every System V segment (from /proc/sysvipc/shm) and every file
// under /dev/shm and the --dir directories that is a valid shmvar segment
// this user can read. Segments of other formats are not listed.
// With --format json it writes JSON Lines, one object per segment or file.
func cmdLs(p *parsed, stdout io.Writer) error {
	dirs := p.list("dir")
	for _, dir := range dirs {
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			return fmt.Errorf("--dir %s is not a directory this user can read", dir)
		}
	}
	jsonLines := p.str("format") == "json"
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	if !jsonLines {
		fmt.Fprintln(w, "SEGMENT\tTYPE\tCAPACITY\tGENERATION\tLOCK\tATTACHED\tOWNER")
	}
	row := func(name string, v *shmvar.Var[proto.Message], attached string) {
		defer v.Close()
		info, _ := v.Stat()
		g, _ := v.Generation()
		lock, _ := v.Lock()
		if jsonLines {
			o := &jsonObject{}
			kind, id, _ := strings.Cut(name, "=")
			o.str(kind, id)
			o.str("type", v.Descriptor().GetMessageType()).num("capacity", int64(v.Capacity())).unum("generation", g).raw("lock", lockJSON(lock))
			if n, err := strconv.ParseInt(attached, 10, 64); err == nil {
				o.num("attached", n)
			} else {
				o.raw("attached", "null")
			}
			o.raw("owner", (&jsonObject{}).num("uid", int64(info.UID)).str("mode", fmt.Sprintf("%04o", info.Mode)).end())
			fmt.Fprintln(stdout, o.end())
			return
		}
		holder := "free"
		if lock.Word != 0 {
			holder = fmt.Sprintf("%s (%s)", lock.HolderString(), lock.HolderLiveness())
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\tuid=%d %04o\n", name, v.Descriptor().GetMessageType(), v.Capacity(), g, holder, attached, info.UID, info.Mode)
	}
	keys, err := sysvKeys()
	if err != nil {
		return err
	}
	for _, k := range keys {
		if v, err := shmvar.OpenAny(k.key, shmvar.Options{ReadOnly: true, AnyOwner: true, AnyMode: true, InitWait: 1}); err == nil {
			row("key="+shmvar.FormatKey(k.key), v, k.attached)
		}
	}
	for _, dir := range append([]string{"/dev/shm"}, dirs...) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if dir == "/dev/shm" {
				continue
			}
			return fmt.Errorf("--dir %s is not a directory this user can read", dir)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			path := filepath.Join(dir, e.Name())
			if !hasMagic(path) {
				continue
			}
			if v, err := shmvar.OpenAnyFile(path, shmvar.Options{ReadOnly: true, AnyOwner: true, AnyMode: true, InitWait: 1}); err == nil {
				row("file="+path, v, "-")
			}
		}
	}
	return w.Flush()
}

type sysvKey struct {
	key      uint32
	attached string
}

// sysvKeys reads the non-private segments from /proc/sysvipc/shm.
func sysvKeys() ([]sysvKey, error) {
	f, err := os.Open("/proc/sysvipc/shm")
	if err != nil {
		return nil, fmt.Errorf("listing System V segments: %w", err)
	}
	defer f.Close()
	var keys []sysvKey
	sc := bufio.NewScanner(f)
	sc.Scan() // header: key shmid perms size cpid lpid nattch ...
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		key, err := strconv.ParseInt(fields[0], 10, 64)
		size, _ := strconv.ParseUint(fields[3], 10, 64)
		if err != nil || key == 0 || size < uint64(shmvar.AttachmentTableOffset) {
			continue
		}
		keys = append(keys, sysvKey{key: uint32(key), attached: fields[6]})
	}
	return keys, sc.Err()
}

// hasMagic reads a file's first four bytes, so that ls does not map files
// of other formats.
func hasMagic(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	return uint32(b[0])|uint32(b[1])<<8|uint32(b[2])<<16|uint32(b[3])<<24 == shmvar.Magic
}
