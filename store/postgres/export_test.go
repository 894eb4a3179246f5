package postgres

import "time"

// SetListenPing sets how long Listen waits for a notification before it
// pings the server (listenPing), for a test of the ping.
func SetListenPing(s *Store, d time.Duration) { s.ping = d }
