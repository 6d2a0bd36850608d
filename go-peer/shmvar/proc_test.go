package shmvar_test

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"testing"
)

// identityOf builds the lock word of process pid as the protocol defines it.
func identityOf(t testing.TB, pid int) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(pid)<<32 | start&0xffffffff
}

func putWord(mem []byte, off int, v uint64) { binary.LittleEndian.PutUint64(mem[off:], v) }

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
