//go:build linux && (amd64 || arm64)

package main

import (
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// read gets the shared Counter without a lock as fast as it can, from start
// (so that several readers started one after another measure the same
// window) for d, and reports how many gets it made.
func read(key uint32, start time.Time, d time.Duration) (any, error) {
	v, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	time.Sleep(time.Until(start))
	began := time.Now()
	end := began.Add(d)
	gets := 0
	var last int64
	for ; gets&1023 != 0 || time.Now().Before(end); gets++ {
		c, err := v.Get()
		if err != nil {
			return nil, err
		}
		last = c.Value
	}
	elapsed := time.Since(began)
	return map[string]any{"gets": gets, "seconds": elapsed.Seconds(), "gets_per_s": float64(gets) / elapsed.Seconds(),
		"last_value": last}, nil
}
