package vpcd

import "syscall"

// quickACK asks the kernel to acknowledge what was received at once
// (TCP_QUICKACK; Linux clears it again by itself, so it is set after every
// read).
func quickACK(raw syscall.RawConn) {
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
