package shmvar_test

import (
	"encoding/binary"
	"hash/crc32"
)

func putWord(mem []byte, off int, v uint64) { binary.LittleEndian.PutUint64(mem[off:], v) }

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
