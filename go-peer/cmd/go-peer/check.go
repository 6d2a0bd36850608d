//go:build linux && (amd64 || arm64)

package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvar"
	"google.golang.org/protobuf/proto"
)

// cmdCheck reads the value over and over for a while, opening the segment
// afresh every 100 reads, and reports how many reads validated: a health
// check for a segment that a buggy or hostile process may be scribbling on.
func cmdCheck(args []string, stdout io.Writer) error {
	fs := newFlags("check")
	t := targetFlags(fs)
	duration := fs.Duration("duration", time.Second, "")
	if err := t.parse(fs, args, 0); err != nil {
		return err
	}
	if *duration <= 0 {
		return usageError{"--duration must be positive"}
	}
	var (
		reads, ok, opens, refused int
		kinds                     = map[string]int{}
		first                     error
		v                         *shmvar.Var[proto.Message]
	)
	note := func(err error) {
		kinds[kindOf(err)]++
		if first == nil {
			first = err
		}
	}
	for deadline := time.Now().Add(*duration); time.Now().Before(deadline); {
		if v == nil || reads%100 == 0 {
			if v != nil {
				v.Close()
			}
			opens++
			var err error
			if v, err = t.openAny(reader); err != nil {
				if errors.Is(err, shmvar.ErrClosed) || shmvar.Errno(err) != 0 {
					return err // the segment is gone or unusable: nothing left to check
				}
				refused++
				note(err)
				v = nil
				reads++
				continue
			}
		}
		reads++
		if _, err := v.GetEncoded(); err != nil { // re-reads and re-checks the slot every time, unlike Get
			note(err)
			continue
		}
		ok++
	}
	if v != nil {
		v.Close()
	}
	fmt.Fprintf(stdout, "check: reads=%d ok=%d opens=%d refused-opens=%d", reads, ok, opens, refused)
	for _, k := range []string{"busy", "corrupt", "layout-version", "not-initialised", "not-shmvar", "other"} {
		if kinds[k] > 0 {
			fmt.Fprintf(stdout, " %s=%d", k, kinds[k])
		}
	}
	fmt.Fprintln(stdout)
	if first != nil {
		return fmt.Errorf("%d of %d reads failed validation; first: %w", reads-ok, reads, first)
	}
	return nil
}

func kindOf(err error) string {
	switch {
	case errors.Is(err, shmvar.ErrCorrupt):
		return "corrupt"
	case errors.Is(err, shmvar.ErrNotShmvar):
		return "not-shmvar"
	case errors.Is(err, shmvar.ErrNotInitialised):
		return "not-initialised"
	case errors.Is(err, shmvar.ErrLayoutVersion):
		return "layout-version"
	case errors.Is(err, shmvar.ErrBusy):
		return "busy"
	}
	return "other"
}
