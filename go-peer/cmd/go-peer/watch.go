//go:build linux && (amd64 || arm64)

package main

import (
	"errors"
	"fmt"
	"io"
	"os/signal"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvar"
	"google.golang.org/protobuf/encoding/protojson"
)

// waitFlag parses --wait spin|park.
type waitFlag struct{ strategy shmvar.WaitStrategy }

func (w *waitFlag) String() string { return w.strategy.String() }

func (w *waitFlag) Set(s string) error {
	switch s {
	case "park":
		w.strategy = shmvar.SpinThenPark
	case "spin":
		w.strategy = shmvar.Spin
	default:
		return fmt.Errorf("want spin or park, not %q", s)
	}
	return nil
}

// cmdWatch prints each new value as it is committed, until --count values
// or Ctrl-C; a watcher parks on the generation futex between commits.
func cmdWatch(args []string, stdout io.Writer) error {
	fs := newFlags("watch")
	t := targetFlags(fs)
	count := fs.Int64("count", 0, "")
	format := fs.String("format", "text", "")
	trusted := trustFlags(fs)
	if err := t.parse(fs, args, 0); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usageError{fmt.Sprintf("--format %q: want text or json", *format)}
	}
	// A watcher announces itself in the segment so that commits wake it: it
	// writes, so the writers' owner and mode checks apply.
	opts := trusted.writer()
	v, err := openAny(t, "", opts)
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
	for seen := int64(0); *count == 0 || seen < *count; {
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
		var text []byte
		if *format == "json" {
			text, err = protojson.Marshal(value)
		} else {
			text, err = formatValueLine(value)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "generation=%d %s\n", g, text)
		seen++
	}
	return nil
}
