package shmvar_test

import (
	"bytes"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// TestHandOffWithJavaLosesNoWakeUp ping-pongs the counter between this
// process and bin/java-peer pong: each side parks until the other commits.
// A lost wake-up would stall a round until its timeout and fail the test.
func TestHandOffWithJavaLosesNoWakeUp(t *testing.T) {
	for _, c := range []struct {
		wait   shmvar.WaitStrategy
		rounds int
	}{{shmvar.SpinThenPark, 20000}, {shmvar.Spin, 5000}} {
		t.Run(c.wait.String(), func(t *testing.T) {
			key := testKey(t)
			v, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{Wait: c.wait})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			java := exec.Command(javaPeer(t), "pong", "--key", shmvar.FormatKey(key), "--rounds", strconv.Itoa(c.rounds), "--after", "0", "--wait", c.wait.String(), "--timeout", "10s")
			var out bytes.Buffer
			java.Stdout, java.Stderr = &out, &out
			if err := java.Start(); err != nil {
				t.Fatal(err)
			}
			defer java.Process.Kill()
			var g uint64
			for i := 0; i < c.rounds; i++ {
				if _, err := v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
					c.Value++
					return c, nil
				}); err != nil {
					t.Fatal(err)
				}
				g++
				// The first round also waits for the JVM to start.
				if g, err = v.AwaitChange(g, 30*time.Second); err != nil {
					t.Fatalf("round %d: no answer from java-peer pong: %v (%s)", i, err, out.String())
				}
			}
			if err := java.Wait(); err != nil {
				t.Fatalf("java-peer pong: %v: %s", err, out.String())
			}
			got, _ := v.Get()
			if got.GetValue() != int64(2*c.rounds) {
				t.Fatalf("value = %d, want %d", got.GetValue(), 2*c.rounds)
			}
			t.Logf("%s", bytes.TrimSpace(out.Bytes()))
		})
	}
}

func TestAwaitChangeTimesOutAndWakesOnCommit(t *testing.T) {
	v := mustCreateCounter(t, testKey(t))
	start := time.Now()
	if _, err := v.AwaitChange(0, 30*time.Millisecond); err == nil || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("AwaitChange on an idle variable: %v after %v", err, time.Since(start))
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		v.Set(&examplespb.Counter{Value: 1})
	}()
	g, err := v.AwaitChange(0, 5*time.Second)
	if err != nil || g != 1 {
		t.Fatalf("AwaitChange = %d, %v; want 1", g, err)
	}
}
