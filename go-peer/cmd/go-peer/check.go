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

// checkKinds are the failure kinds check counts, in the order it prints them.
var checkKinds = []string{"busy", "corrupt", "layout-version", "not-initialised", "not-shmvar", "other"}

// cmdCheck reads and validates the value --reads times, --interval apart
// (or for --duration), opening the segment afresh every 100 reads, and
// reports how many reads validated: a health check for a segment that a
// buggy or hostile process may be scribbling on. The default, 3 reads 100 ms
// apart, costs a probe next to nothing.
func cmdCheck(p *parsed, stdout io.Writer) error {
	t := newTarget(p)
	reads, interval, duration := p.int("reads"), time.Duration(p.int("interval")), time.Duration(p.int("duration"))
	if p.has("duration") && !p.has("interval") {
		interval = 0 // a stress check reads back to back
	}
	var (
		done, ok, opens, refused int64
		kinds                    = map[string]int64{}
		first                    error
		v                        *shmvar.Var[proto.Message]
	)
	note := func(err error) {
		kinds[kindOf(err)]++
		if first == nil {
			first = err
		}
	}
	deadline := time.Now().Add(duration)
	more := func() bool {
		if p.has("duration") {
			return time.Now().Before(deadline)
		}
		return done < reads
	}
	for more() {
		if done > 0 && interval > 0 {
			time.Sleep(interval)
		}
		if v == nil || done%100 == 0 {
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
				done++
				continue
			}
		}
		done++
		if _, err := v.GetEncoded(); err != nil { // re-reads and re-checks the slot every time, unlike Get
			note(err)
			continue
		}
		ok++
	}
	if v != nil {
		v.Close()
	}
	if p.str("format") == "json" {
		failed := &jsonObject{}
		for _, k := range checkKinds {
			if kinds[k] > 0 {
				failed.num(k, kinds[k])
			}
		}
		o := (&jsonObject{}).num("reads", done).num("ok", ok).num("opens", opens).num("refusedOpens", refused).raw("failed", failed.end())
		if first != nil {
			o.str("firstError", first.Error())
		}
		fmt.Fprintln(stdout, o.end())
	} else {
		fmt.Fprintf(stdout, "check: reads=%d ok=%d opens=%d refused-opens=%d", done, ok, opens, refused)
		for _, k := range checkKinds {
			if kinds[k] > 0 {
				fmt.Fprintf(stdout, " %s=%d", k, kinds[k])
			}
		}
		fmt.Fprintln(stdout)
	}
	if first != nil {
		return fmt.Errorf("%d of %d reads failed validation; first: %w", done-ok, done, first)
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
