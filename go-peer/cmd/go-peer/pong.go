//go:build linux && (amd64 || arm64)

package main

import (
	"fmt"
	"io"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
)

// cmdPong answers each commit of another process with one increment of its
// own, --rounds times: the far end of a ping-pong through the variable, used
// by the cross-language hand-off test and by make bench.
func cmdPong(args []string, stdout io.Writer) error {
	fs := newFlags("pong")
	t := targetFlags(fs)
	rounds := fs.Int64("rounds", 0, "")
	after := fs.Int64("after", -1, "")
	timeout := fs.Duration("timeout", 10*time.Second, "")
	trusted := trustFlags(fs)
	if err := t.parse(fs, args, 0); err != nil {
		return err
	}
	if *rounds < 1 {
		return usageError{"--rounds must be at least 1"}
	}
	opts := trusted.writer()
	v, err := t.openCounter(opts)
	if err != nil {
		return err
	}
	defer v.Close()
	g, err := v.Generation()
	if err != nil {
		return err
	}
	if *after >= 0 {
		g = uint64(*after) // answer a commit made before we started
	}
	start := time.Now()
	for i := int64(0); i < *rounds; i++ {
		if g, err = v.AwaitChange(g, *timeout); err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		if err = v.Mutate(func(c *examplespb.Counter) error { // in place: the pong keeps no value
			c.Value++
			return nil
		}); err != nil {
			return err
		}
		g++ // our own commit: wait past it next
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "pong: rounds=%d elapsed=%s wait=%s\n", *rounds, elapsed.Round(time.Millisecond), trusted.wait.strategy)
	return nil
}
