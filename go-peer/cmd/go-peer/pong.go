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
func cmdPong(p *parsed, stdout io.Writer) error {
	t := newTarget(p)
	rounds, timeout := p.int("rounds"), time.Duration(p.int("timeout"))
	v, err := t.openCounter(writer(p))
	if err != nil {
		return err
	}
	defer v.Close()
	g, err := v.Generation()
	if err != nil {
		return err
	}
	if p.has("after") {
		g = uint64(p.int("after")) // answer a commit made before we started
	}
	start := time.Now()
	for i := int64(0); i < rounds; i++ {
		if g, err = v.AwaitChange(g, timeout); err != nil {
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
	fmt.Fprintf(stdout, "pong: rounds=%d elapsed=%s wait=%s\n", rounds, elapsed.Round(time.Millisecond), p.str("wait"))
	return nil
}
