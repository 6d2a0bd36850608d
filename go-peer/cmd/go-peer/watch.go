//go:build linux && (amd64 || arm64)

package main

import (
	"errors"
	"fmt"
	"io"
	"os/signal"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// cmdWatch prints each new value as it is committed, until --count values
// or Ctrl-C (exit 130) or SIGTERM (143); a watcher parks on the generation
// futex between commits. --format json writes JSON Lines.
func cmdWatch(p *parsed, stdout io.Writer) error {
	t := newTarget(p)
	count, format := p.int("count"), p.str("format")
	// A watcher announces itself in the segment so that commits wake it: it
	// writes, so the writers' owner and mode checks apply.
	v, err := openAny(t, "", writer(p))
	if err != nil {
		return err
	}
	defer v.Close()
	signals := notifySignals()
	defer signal.Stop(signals)
	g, err := v.Generation()
	if err != nil {
		return err
	}
	for seen := int64(0); count == 0 || seen < count; {
		select {
		case s := <-signals:
			return stoppedBy(s)
		default:
		}
		next, err := v.AwaitChange(g, 200*time.Millisecond) // short, so Ctrl-C is noticed
		if errors.Is(err, shmvar.ErrTimeout) {
			if info, err := v.Stat(); err != nil || info.Removed {
				return t.errorf("watch", shmvar.ErrClosed, "the segment was removed")
			}
			continue
		}
		if err != nil {
			return err
		}
		g = next
		value, err := v.Get()
		if err != nil {
			return err
		}
		if format == "json" { // JSON Lines: one object per commit
			fmt.Fprintf(stdout, "{\"generation\":%d,\"value\":%s}\n", g, canonJSON(value.ProtoReflect()))
		} else {
			fmt.Fprintf(stdout, "generation=%d %s\n", g, canonText(value.ProtoReflect()))
		}
		seen++
	}
	return nil
}
