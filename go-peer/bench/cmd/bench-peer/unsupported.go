//go:build !(linux && (amd64 || arm64))

package main

import (
	"fmt"
	"os"
	"runtime"
)

// bench-peer runs where package shmvar does: Linux on amd64 or arm64. Elsewhere it
// builds, so that go build ./... works on any machine, and says so.
func main() {
	fmt.Fprintf(os.Stderr, "bench-peer: runs on linux/amd64 and linux/arm64 only, this is %s/%s\n", runtime.GOOS, runtime.GOARCH)
	os.Exit(1)
}
