//go:build !linux

package vpcd

import "syscall"

// quickACK does nothing where TCP_QUICKACK does not exist (pcscd with vpcd
// runs on Linux).
func quickACK(syscall.RawConn) {}
