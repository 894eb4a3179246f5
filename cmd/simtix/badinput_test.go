package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/issuer"
)

// badCommand is one command line with wrong, missing or hostile arguments,
// and how it must end.
type badCommand struct {
	name string
	args []string
	// want is the exit status: exitUsage for a command line that is wrong
	// in itself (nothing is done), exitError for one the work refuses.
	want int
	// msg is what the message on stderr says.
	msg string
}

// TestBadInputEveryCommand runs every command with wrong, missing and
// hostile arguments against a running server and a card that holds a
// checked ticket: each ends with exit status 2 (a usage error, with the
// pointer to --help) or 1, with nothing on stdout and a message on stderr
// that says what is wrong, and leaves every file as it was: the card
// image, the gate journal, the server's keys and tokens, and the files the
// arguments name; no file appears or goes.
func TestBadInputEveryCommand(t *testing.T) {
	r := newRoles(t)
	hall := []string{"--seller", "Simtix Hall", "--date", "2026-12-12", "--time", "19:30", "--price", "4200", "--idempotency-key", "bad-hall"}
	issued := r.order(hall...)
	r.sync()
	dir := t.TempDir()
	journal := filepath.Join(dir, "gate.journal")
	code, _, errOut := r.gate(journal, "--venue", "Simtix Hall")
	require.Equal(t, exitOK, code, "a gate check fills the journal: %s", errOut)

	img, srv := r.image, r.srv.URL
	master, opToken, gateToken, keySet := r.srv.File(issuer.MasterFile), r.srv.File(issuer.OperatorTokenFile),
		r.srv.File(issuer.GateTokenFile), r.srv.File(issuer.KeySetFile)
	notes := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notes, []byte("hello\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	damaged := filepath.Join(dir, "damaged.img")
	b, err := os.ReadFile(img)
	require.NoError(t, err)
	b[len(b)/2] ^= 1
	require.NoError(t, os.WriteFile(damaged, b, 0o600))
	emptyDir := filepath.Join(dir, "nothing-here")
	require.NoError(t, os.Mkdir(emptyDir, 0o700))
	missing := filepath.Join(dir, "missing")
	down := "http://127.0.0.1:1"
	sel := "00A4040008F053494D54495801"
	id1, id2 := strings.Repeat("01", 10), strings.Repeat("02", 10)
	newCard := func(extra ...string) []string {
		return append([]string{"card", "new", "--image", filepath.Join(dir, "new.img"), "--serial", testSerial, "--master-key", master}, extra...)
	}
	order := func(extra ...string) []string {
		return append([]string{"order", "--server", srv, "--token-file", opToken, "--carrier", testSerial}, extra...)
	}
	ticket := []string{"--seller", "S", "--date", "2026-12-12", "--time", "19:30"}
	gate := func(extra ...string) []string {
		return append([]string{"gate", "--image", img, "--issuer-keys", keySet, "--venue", "Simtix Hall", "--journal", journal,
			"--now", "2026-12-12T19:00:00Z", "--timezone", "UTC"}, extra...)
	}

	cases := []badCommand{
		// The command line itself: exit 2.
		{name: "unknown command", args: []string{"nosuch"}, want: exitUsage, msg: `unknown command "nosuch"`},
		{name: "unknown flag", args: []string{"--nosuch"}, want: exitUsage, msg: "unknown flag: --nosuch"},
		{name: "card, unknown command", args: []string{"card", "nosuch", "--image", img}, want: exitUsage, msg: "unknown flag: --image"},
		{name: "card, unknown command alone", args: []string{"card", "nosuch"}, want: exitUsage, msg: `unknown command "nosuch" for "simtix card"; its commands are: apdu, new, serve, show`},
		{name: "keys, unknown command", args: []string{"keys", "nosuch"}, want: exitUsage, msg: `unknown command "nosuch" for "simtix keys"; its commands are: list, rotate`},
		{name: "ticket, unknown command", args: []string{"ticket", "nosuch"}, want: exitUsage, msg: `unknown command "nosuch" for "simtix ticket"; its commands are: explain`},
		{name: "help, unknown command", args: []string{"help", "card", "nosuch"}, want: exitUsage, msg: `unknown command "nosuch" for "simtix card"`},
		{name: "card new, short serial", args: []string{"card", "new", "--image", filepath.Join(dir, "new.img"), "--serial", "8986", "--master-key", master}, want: exitUsage, msg: "want 20 hex digits"},
		{name: "card new, serial not hex", args: []string{"card", "new", "--image", filepath.Join(dir, "new.img"), "--serial", strings.Repeat("z", 20), "--master-key", master}, want: exitUsage, msg: "invalid hex"},
		{name: "card new, capacity too small", args: newCard("--capacity", "100"), want: exitUsage, msg: "--capacity 100: want 256 to 32767 bytes"},
		{name: "card new, capacity not a number", args: newCard("--capacity", "2k"), want: exitUsage, msg: `invalid argument "2k" for "--capacity"`},
		{name: "card new, huge capacity", args: newCard("--capacity", "99999999999999999999"), want: exitUsage, msg: `invalid argument "99999999999999999999" for "--capacity"`},
		{name: "card new, too many tickets", args: newCard("--max-tickets", "256"), want: exitUsage, msg: "--max-tickets 256: want 1 to 255"},
		{name: "card new, no master key", args: []string{"card", "new", "--image", filepath.Join(dir, "new.img"), "--serial", testSerial}, want: exitUsage, msg: `required flag(s) "master-key" not set`},
		{name: "card new, an argument", args: newCard("extra"), want: exitUsage, msg: `unexpected argument "extra"`},
		{name: "card apdu, no APDU", args: []string{"card", "apdu", "--image", img}, want: exitUsage, msg: "requires at least 1 arg"},
		{name: "card apdu, an APDU not hex", args: []string{"card", "apdu", "--image", img, sel, "80F2 0000 00", "xyz"}, want: exitUsage, msg: `"xyz" is not hex`},
		{name: "card apdu, odd hex", args: []string{"card", "apdu", "--image", img, "00A404000"}, want: exitUsage, msg: "is not hex"},
		{name: "card apdu, unknown interface", args: []string{"card", "apdu", "--image", img, "--interface", "nfc", sel}, want: exitUsage, msg: `--interface "nfc": want contact or contactless`},
		{name: "card apdu, fault at write 0", args: []string{"card", "apdu", "--image", img, "--fault", "tear:0", sel}, want: exitUsage, msg: "want write:N or tear:N with N >= 1"},
		{name: "card apdu, unknown fault", args: []string{"card", "apdu", "--image", img, "--fault", "melt:1", sel}, want: exitUsage, msg: `unknown kind "melt"`},
		{name: "card show, no image", args: []string{"card", "show"}, want: exitUsage, msg: `required flag(s) "image" not set`},
		{name: "card show, an argument", args: []string{"card", "show", "--image", img, img}, want: exitUsage, msg: "unexpected argument"},
		{name: "card serve, vpcd not HOST:PORT", args: []string{"card", "serve", "--image", img, "--vpcd", "35963"}, want: exitUsage, msg: `--vpcd "35963": want HOST:PORT`},
		{name: "card serve, one slot for both", args: []string{"card", "serve", "--image", img, "--vpcd", "127.0.0.1:1", "--contactless-vpcd", "127.0.0.1:1"}, want: exitUsage, msg: "each interface needs its own slot"},
		{name: "card serve, bad fault", args: []string{"card", "serve", "--image", img, "--fault", "write:x"}, want: exitUsage, msg: "want write:N or tear:N"},
		{name: "server, an argument", args: []string{"server", "--data-dir", filepath.Join(dir, "srv"), "now"}, want: exitUsage, msg: `unexpected argument "now"`},
		{name: "server, listen address without a port", args: []string{"server", "--data-dir", filepath.Join(dir, "srv"), "--listen", "localhost"}, want: exitUsage, msg: "--listen"},
		{name: "server, issuer key file in a missing directory", args: []string{"server", "--data-dir", filepath.Join(dir, "srv"), "--issuer-key", filepath.Join(dir, "nowhere", "issuer.pem")}, want: exitUsage, msg: "its directory must exist"},
		{name: "order, no ticket", args: order(), want: exitUsage, msg: "give the ticket fields"},
		{name: "order, no such date", args: order("--seller", "S", "--date", "2026-02-30", "--time", "19:30"), want: exitUsage, msg: `date "2026-02-30": no such date`},
		{name: "order, no such time", args: order("--seller", "S", "--date", "2026-12-12", "--time", "25:00"), want: exitUsage, msg: `"25:00"`},
		{name: "order, negative price", args: order(append(ticket, "--price", "-1")...), want: exitUsage, msg: `invalid argument "-1" for "--price"`},
		{name: "order, type over 255", args: order(append(ticket, "--type", "256")...), want: exitUsage, msg: `invalid argument "256" for "--type"`},
		{name: "order, server not a URL", args: []string{"order", "--server", "localhost:8080", "--token-file", opToken, "--carrier", testSerial, "--file", "corpus"}, want: exitUsage, msg: "want http://host:port"},
		{name: "order, no carrier", args: []string{"order", "--server", srv, "--token-file", opToken, "--file", "corpus"}, want: exitUsage, msg: `required flag(s) "carrier" not set`},
		{name: "tickets, no credentials", args: []string{"tickets", "--server", srv, "--carrier", testSerial}, want: exitUsage, msg: "sign in with one of --token-file"},
		{name: "tickets, two credentials", args: []string{"tickets", "--server", srv, "--token-file", opToken, "--image", img}, want: exitUsage, msg: "sign in with one of --token-file"},
		{name: "tickets, operator without a carrier", args: []string{"tickets", "--server", srv, "--token-file", opToken}, want: exitUsage, msg: "--carrier is required with --token-file"},
		{name: "sync, no card", args: []string{"sync", "--server", srv}, want: exitUsage, msg: "give the card as --reader NAME or --image FILE"},
		{name: "sync, two cards", args: []string{"sync", "--server", srv, "--image", img, "--reader", "Virtual PCD 00 00"}, want: exitUsage, msg: "give the card as --reader NAME or --image FILE"},
		{name: "sync, give without take", args: []string{"sync", "--server", srv, "--image", img, "--give", id1}, want: exitUsage, msg: "--give and --take name two tickets"},
		{name: "sync, give not an ID", args: []string{"sync", "--server", srv, "--image", img, "--give", "00", "--take", id2}, want: exitUsage, msg: "--give and --take name two tickets"},
		{name: "sync, exchange while watching", args: []string{"sync", "--server", srv, "--image", img, "--give", id1, "--take", id2, "--watch"}, want: exitUsage, msg: "not with --watch"},
		{name: "sync, server not http", args: []string{"sync", "--server", "ftp://127.0.0.1", "--image", img}, want: exitUsage, msg: "want http://host:port"},
		{name: "sync, interval not a duration", args: []string{"sync", "--server", srv, "--image", img, "--interval", "1"}, want: exitUsage, msg: `invalid argument "1" for "--interval"`},
		{name: "gate, no card", args: []string{"gate", "--issuer-keys", keySet, "--venue", "V", "--journal", journal}, want: exitUsage, msg: "give the card as --reader NAME or --image FILE"},
		{name: "gate, no venue flag", args: []string{"gate", "--image", img, "--issuer-keys", keySet, "--journal", journal}, want: exitUsage, msg: `required flag(s) "venue" not set`},
		{name: "gate, gate ID not hex", args: gate("--gate-id", "GATE0001"), want: exitUsage, msg: `--gate-id "GATE0001": want 8 hex digits`},
		{name: "gate, window without AFTER", args: gate("--window", "2h"), want: exitUsage, msg: "want BEFORE,AFTER"},
		{name: "gate, negative window", args: gate("--window", "-1h,1h"), want: exitUsage, msg: "want BEFORE,AFTER"},
		{name: "gate, clock not RFC 3339", args: gate("--now", "2026-12-12 19:00"), want: exitUsage, msg: "want RFC 3339"},
		{name: "gate, unknown time zone", args: gate("--timezone", "Mars/Olympus_Mons"), want: exitUsage, msg: `--timezone "Mars/Olympus_Mons"`},
		{name: "gate, unknown bit rate", args: gate("--rate", "100"), want: exitUsage, msg: "--rate 100: want 106, 212, 424 or 848"},
		{name: "gate, server without a token", args: gate("--server", srv), want: exitUsage, msg: "--server and --token-file"},
		{name: "gate, empty venue", args: append(gate(), "--venue", "", "--journal", filepath.Join(dir, "new.journal")), want: exitUsage, msg: "name the venue"},
		{name: "ticket explain, no argument", args: []string{"ticket", "explain"}, want: exitUsage, msg: "accepts 1 arg"},
		{name: "ticket explain, not hex", args: []string{"ticket", "explain", "E1 0G"}, want: exitUsage, msg: "is not hex"},
		{name: "ticket explain, two arguments", args: []string{"ticket", "explain", "E1", "00"}, want: exitUsage, msg: "accepts 1 arg"},
		{name: "keys list, nowhere", args: []string{"keys", "list"}, want: exitUsage, msg: "give --server URL (a running server) or --data-dir DIR"},
		{name: "keys list, two places", args: []string{"keys", "list", "--server", srv, "--data-dir", r.srv.Dir}, want: exitUsage, msg: "one of them"},
		{name: "keys list, JSON and PEM", args: []string{"keys", "list", "--server", srv, "--json", "--pem"}, want: exitUsage, msg: "--json and --pem: choose one"},
		{name: "keys rotate, server without a token", args: []string{"keys", "rotate", "--server", srv}, want: exitUsage, msg: "--server needs --token-file"},
		{name: "keys rotate, token with a data dir", args: []string{"keys", "rotate", "--data-dir", emptyDir, "--token-file", opToken}, want: exitUsage, msg: "--token-file goes with --server"},
		{name: "keys rotate, issuer key with a server", args: []string{"keys", "rotate", "--server", srv, "--token-file", opToken, "--issuer-key", "tpm:sim"}, want: exitUsage, msg: "--issuer-key goes with --data-dir"},
		{name: "readers, an argument", args: []string{"readers", "all"}, want: exitUsage, msg: `unexpected argument "all"`},
		{name: "readers, timeout not a duration", args: []string{"readers", "--timeout", "soon"}, want: exitUsage, msg: `invalid argument "soon" for "--timeout"`},
		{name: "version, an argument", args: []string{"version", "2"}, want: exitUsage, msg: `unexpected argument "2"`},
		{name: "demo, an argument", args: []string{"demo", "fast"}, want: exitUsage, msg: `unexpected argument "fast"`},

		// The work refuses: exit 1.
		{name: "card new, no master key file", args: []string{"card", "new", "--image", filepath.Join(dir, "new.img"), "--serial", testSerial, "--master-key", missing}, want: exitError, msg: "master key: open " + missing},
		{name: "card new, master key not hex", args: []string{"card", "new", "--image", filepath.Join(dir, "new.img"), "--serial", testSerial, "--master-key", notes}, want: exitError, msg: "want 64 hex digits (32 bytes)"},
		{name: "card new over a card", args: []string{"card", "new", "--image", img, "--serial", testSerial, "--master-key", master}, want: exitError, msg: "choose another --image"},
		{name: "card new over the master key", args: []string{"card", "new", "--image", master, "--serial", testSerial, "--master-key", master}, want: exitError, msg: "choose another --image"},
		{name: "card new in no directory", args: []string{"card", "new", "--image", filepath.Join(missing, "new.img"), "--serial", testSerial, "--master-key", master}, want: exitError, msg: "no such file or directory"},
		{name: "card apdu, no image", args: []string{"card", "apdu", "--image", missing, sel}, want: exitError, msg: "cannot open: no such file or directory"},
		{name: "card apdu, a text file", args: []string{"card", "apdu", "--image", notes, sel}, want: exitError, msg: "not a simtix card image"},
		{name: "card apdu, the master key", args: []string{"card", "apdu", "--image", master, sel}, want: exitError, msg: "not a simtix card image"},
		{name: "card apdu, the journal", args: []string{"card", "apdu", "--image", journal, sel}, want: exitError, msg: "not a simtix card image"},
		{name: "card apdu, an empty file", args: []string{"card", "apdu", "--image", empty, sel}, want: exitError, msg: "the file is empty"},
		{name: "card apdu, a directory", args: []string{"card", "apdu", "--image", dir, sel}, want: exitError, msg: "not a regular file"},
		{name: "card apdu, a damaged image", args: []string{"card", "apdu", "--image", damaged, sel}, want: exitError, msg: "damaged"},
		{name: "card show, a text file", args: []string{"card", "show", "--image", notes}, want: exitError, msg: "not a simtix card image"},
		{name: "card show, a damaged image", args: []string{"card", "show", "--image", damaged}, want: exitError, msg: "damaged"},
		{name: "card serve, a text file", args: []string{"card", "serve", "--image", notes, "--vpcd", "127.0.0.1:1", "--contactless-vpcd", "127.0.0.1:2"}, want: exitError, msg: "not a simtix card image"},
		{name: "server, data dir a file", args: []string{"server", "--data-dir", notes, "--listen", "127.0.0.1:0"}, want: exitError, msg: "not a directory"},
		{name: "order, no token file", args: []string{"order", "--server", srv, "--token-file", missing, "--carrier", testSerial, "--file", "corpus"}, want: exitError, msg: "token: open " + missing},
		{name: "order, empty token file", args: []string{"order", "--server", srv, "--token-file", empty, "--carrier", testSerial, "--file", "corpus"}, want: exitError, msg: "is empty"},
		{name: "order, the gate token", args: []string{"order", "--server", srv, "--token-file", gateToken, "--carrier", testSerial, "--file", "corpus"}, want: exitError, msg: "an operator token is required (Authorization: Bearer, DATA_DIR/operator.token)"},
		{name: "order, server down", args: []string{"order", "--server", down, "--token-file", opToken, "--carrier", testSerial, "--file", "corpus"}, want: exitError, msg: "connection refused"},
		{name: "order, carrier neither serial nor MSISDN", args: []string{"order", "--server", srv, "--token-file", opToken, "--carrier", "8986-0012", "--file", "corpus"}, want: exitError, msg: "neither a card serial (20 hex digits) nor an MSISDN"},
		{name: "order, unknown MSISDN", args: []string{"order", "--server", srv, "--token-file", opToken, "--carrier", "+8613999999999", "--file", "corpus"}, want: exitError, msg: "no card is registered for MSISDN"},
		{name: "order, tickets file not JSON", args: order("--file", notes), want: exitError, msg: "want a JSON array of tickets"},
		{name: "order, no tickets file", args: order("--file", missing), want: exitError, msg: "no such file or directory"},
		{name: "order, seller too long", args: order("--seller", strings.Repeat("S", 65), "--date", "2026-12-12", "--time", "19:30"), want: exitError, msg: "at most 64"},
		{name: "order, idempotency key with a control character", args: order(append(ticket, "--idempotency-key", "key\x1b[2J")...), want: exitError, msg: "want printable UTF-8 text"},
		{name: "order, idempotency key of another order", args: order(append(ticket, "--idempotency-key", "bad-hall")...), want: exitError, msg: "was used for another order"},
		{name: "tickets, a text file as the card", args: []string{"tickets", "--server", srv, "--image", notes}, want: exitError, msg: "not a simtix card image"},
		{name: "tickets, the gate token", args: []string{"tickets", "--server", srv, "--token-file", gateToken, "--carrier", testSerial}, want: exitError, msg: "an operator token or a session won by the card"},
		{name: "tickets, unknown MSISDN", args: []string{"tickets", "--server", srv, "--token-file", opToken, "--carrier", "+8613999999999"}, want: exitError, msg: "no card is registered for MSISDN"},
		{name: "tickets, server down", args: []string{"tickets", "--server", down, "--image", img}, want: exitError, msg: "connection refused"},
		{name: "sync, a text file as the card", args: []string{"sync", "--server", srv, "--image", notes}, want: exitError, msg: "not a simtix card image"},
		{name: "sync, a damaged card", args: []string{"sync", "--server", srv, "--image", damaged}, want: exitError, msg: "damaged"},
		{name: "sync, server down", args: []string{"sync", "--server", down, "--image", img}, want: exitError, msg: "connection refused"},
		{name: "gate, no issuer keys file", args: []string{"gate", "--image", img, "--issuer-keys", missing, "--venue", "V", "--journal", journal}, want: exitError, msg: "no such file or directory"},
		{name: "gate, issuer keys not PEM", args: []string{"gate", "--image", img, "--issuer-keys", notes, "--venue", "V", "--journal", journal}, want: exitError, msg: "issuer keys"},
		{name: "gate, the master key as issuer keys", args: []string{"gate", "--image", img, "--issuer-keys", master, "--venue", "V", "--journal", journal}, want: exitError, msg: "issuer keys"},
		{name: "gate, journal a text file", args: gate("--journal", notes), want: exitError, msg: "not a simtix gate journal"},
		{name: "gate, the master key as journal", args: gate("--journal", master), want: exitError, msg: "not a simtix gate journal"},
		{name: "gate, the card image as journal", args: gate("--journal", img), want: exitError, msg: "not a simtix gate journal"},
		{name: "gate, journal in no directory", args: gate("--journal", filepath.Join(missing, "j")), want: exitError, msg: "cannot create"},
		{name: "gate, a text file as the card", args: gate("--image", notes), want: exitError, msg: "not a simtix card image"},
		{name: "gate, a text file as the card, new journal", args: gate("--image", notes, "--journal", filepath.Join(dir, "new.journal")), want: exitError, msg: "not a simtix card image"},
		{name: "ticket explain, not a ticket", args: []string{"ticket", "explain", "E1"}, want: exitError, msg: "tag E1 at offset 0: truncated"},
		{name: "ticket explain, a certificate cut short", args: []string{"ticket", "explain", "E5 03 88 01 00"}, want: exitError, msg: "certificate"},
		{name: "ticket explain, no issuer keys file", args: []string{"ticket", "explain", "--issuer-keys", missing, issued.Tickets[0].Ticket}, want: exitError, msg: "no such file or directory"},
		{name: "ticket explain, issuer keys not PEM", args: []string{"ticket", "explain", "--issuer-keys", notes, issued.Tickets[0].Ticket}, want: exitError, msg: "issuer keys"},
		{name: "keys list, no key set in the data dir", args: []string{"keys", "list", "--data-dir", emptyDir}, want: exitError, msg: "check --data-dir"},
		{name: "keys rotate, no key set in the data dir", args: []string{"keys", "rotate", "--data-dir", emptyDir}, want: exitError, msg: "check --data-dir"},
		{name: "keys list, server down", args: []string{"keys", "list", "--server", down}, want: exitError, msg: "connection refused"},
		{name: "keys rotate, the gate token", args: []string{"keys", "rotate", "--server", srv, "--token-file", gateToken}, want: exitError, msg: "an operator token is required"},
	}
	roots := []string{filepath.Dir(img), dir}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := files(t, roots...)
			code, out, errOut := simtix(t, tc.args...)
			assert.Equal(t, tc.want, code, "%q: %s", tc.args, errOut)
			assert.Empty(t, out, "a command that fails prints nothing on stdout")
			assert.True(t, strings.HasPrefix(errOut, "simtix: "), "the message on stderr: %q", errOut)
			assert.Contains(t, errOut, tc.msg)
			if tc.want == exitUsage {
				assert.Contains(t, errOut, "Run 'simtix --help' or 'simtix COMMAND --help' for usage.")
			}
			assert.Equal(t, before, files(t, roots...), "no file changed, appeared or went")
		})
	}
}

// files returns every file and directory under roots with a digest of its
// contents, but the server's database (which the running server may write
// on its own).
func files(t *testing.T, roots ...string) map[string]string {
	out := map[string]string{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), "simtix.db") {
				return nil
			}
			if d.IsDir() {
				out[path] = "dir"
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[path] = hex.EncodeToString(sum[:])
			return nil
		})
		require.NoError(t, err)
	}
	return out
}
