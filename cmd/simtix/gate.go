package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/hostlib/pcsc"
	"github.com/simtix/simtix/ticketfmt"
)

// exitRefused is `gate --once`'s exit status when the ticket was refused.
const exitRefused = 4

// refusedError ends `gate --once` on a refused ticket.
type refusedError struct{ reason error }

func (e refusedError) Error() string { return "refused: " + e.reason.Error() }
func (e refusedError) Unwrap() error { return e.reason }
func (e refusedError) ExitCode() int { return exitRefused }

// gateJSON is `gate --json`'s document for one check.
type gateJSON struct {
	Accepted bool              `json:"accepted"`
	Reason   string            `json:"reason,omitempty"`
	Serial   *ticketfmt.Serial `json:"serial,omitempty"`
	Ticket   *ticketfmt.Ticket `json:"ticket,omitempty"`
	GateID   string            `json:"gate_id"`
	Time     string            `json:"time,omitempty"`
	APDUs    int               `json:"apdus"`
	Timing   *timingJSON       `json:"timing,omitempty"`
}

func newGateCmd() *cobra.Command {
	var card cardFlags
	var keysFile, venue, gateID, journalFile, serverURL, tokenFile, window, now, zone string
	var once, asJSON bool
	var rate int
	cmd := &cobra.Command{
		Use:   "gate (--reader NAME | --image FILE) --issuer-keys FILE --venue NAME [--gate-id HEX8] [--journal FILE] [--server URL --token-file FILE] [--window BEFORE,AFTER] [--once] [--now RFC3339]",
		Short: "The gate: check a ticket on each card presented",
		Long: `The gate role (network.md, "Gates"): for each card presented on the
contactless reader, SELECT (the card certificate), FIND (the venue's ticket
in the time window) and CHECK with a fresh nonce. The card certificate, the
ticket's signature and binding, the venue, the window, the gate's journal
and the deny list are checked before CHECK; a ticket is admitted only on a
receipt that verifies with the certified card key. Each check is written to
the journal (--journal) before it is reported.

With --server and --token-file (DATA_DIR/gate.token) the gate uploads its
journal and downloads the deny list at start and after each check, when the
server can be reached; it checks offline otherwise.

A ticket is accepted from BEFORE ahead of its use time until AFTER past it
(--window, default 2h,1h) in the venue's time zone (--timezone, default the
system's). --now fixes the gate's clock (tests, replays).

With --reader the gate serves one card after another until interrupted
(--once: the first card only). With --image it checks that card once.
With --once (and with --image) the exit status is 0 only when the ticket
was accepted, 4 when it was refused.

Each verdict comes with the modelled contactless time of the check
(ISO/IEC 14443-4 at --rate kbit/s; docs/contactless.md).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := card.check(); err != nil {
				return err
			}
			if (serverURL == "") != (tokenFile == "") {
				return usagef("--server and --token-file (the gate token, DATA_DIR/gate.token) go together")
			}
			cfg, err := gateConfig(keysFile, venue, gateID, window, now, zone)
			if err != nil {
				return err
			}
			model, err := timingModel(rate)
			if err != nil {
				return err
			}
			var srv *apiclient.Client
			if serverURL != "" {
				token, err := readToken(tokenFile)
				if err != nil {
					return err
				}
				if srv, err = apiclient.New(serverURL, token, nil); err != nil {
					return usageError{err}
				}
			}
			ctx := cmd.Context()
			// The card first (serving card after card: the reader): a
			// start that fails leaves no journal behind.
			var c *openedCard
			var pc *pcsc.Context
			if card.image != "" || once {
				if c, err = card.open(ctx, applet.Contactless); err != nil {
					return err
				}
				defer c.Close()
			} else {
				if pc, err = openReader(card.reader); err != nil {
					return err
				}
				defer pc.Close()
			}
			j, err := journal.Open(journalFile)
			if err != nil {
				return err
			}
			defer j.Close()
			cfg.Journal = j
			g, err := gate.New(cfg)
			if err != nil {
				return usageError{err}
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			exchange := func() { gateExchange(ctx, errOut, g, j, srv) }
			exchange()
			report := func(v gate.Verdict) error {
				doc := verdictDoc(v, cfg.ID, model)
				if asJSON {
					return writeJSON(cmd, doc)
				}
				printVerdict(out, doc)
				return nil
			}
			if c != nil {
				v, err := g.Check(ctx, c)
				if err != nil {
					return err
				}
				exchange()
				if err := report(v); err != nil {
					return err
				}
				if !v.Accepted {
					return refusedError{v.Reason}
				}
				return nil
			}
			return gateLoop(ctx, errOut, pc, card.reader, g, report, exchange)
		},
	}
	f := cmd.Flags()
	f.StringVar(&card.reader, "reader", "", "PC/SC reader of the card's contactless interface")
	f.StringVar(&card.image, "image", "", "card image, run in-process")
	f.StringVar(&keysFile, "issuer-keys", "", "the issuer's public keys (DATA_DIR/issuer-keys.pem)")
	f.StringVar(&venue, "venue", "", "the venue (seller) whose tickets this gate admits")
	f.StringVar(&gateID, "gate-id", "00000001", "gate ID, 8 hex digits")
	f.StringVar(&journalFile, "journal", "simtix-gate.journal", "the gate's journal file")
	f.StringVar(&serverURL, "server", "", "server to upload the journal to and get the deny list from")
	f.StringVar(&tokenFile, "token-file", "", "gate token file (DATA_DIR/gate.token)")
	f.StringVar(&window, "window", "2h,1h", "accepted window BEFORE,AFTER the ticket's use time")
	f.StringVar(&now, "now", "", "the gate's clock, RFC 3339 (default: the system clock)")
	f.StringVar(&zone, "timezone", "", "the venue's time zone, e.g. Europe/London (default: the system's)")
	f.BoolVar(&once, "once", false, "check one card, exit 0 only if its ticket was accepted")
	f.IntVar(&rate, "rate", 106, "contactless bit rate for the timing model: 106, 212, 424 or 848 kbit/s")
	f.BoolVar(&asJSON, "json", false, "print one JSON document per check")
	_ = cmd.MarkFlagRequired("issuer-keys")
	_ = cmd.MarkFlagRequired("venue")
	return cmd
}

// gateConfig reads the gate's flags.
func gateConfig(keysFile, venue, gateID, window, now, zone string) (gate.Config, error) {
	var cfg gate.Config
	if strings.TrimSpace(venue) == "" {
		return cfg, usagef("--venue %q: name the venue (the tickets' seller)", venue)
	}
	cfg.Venue = venue
	id, err := hex.DecodeString(strings.Join(strings.Fields(gateID), ""))
	if err != nil || len(id) != len(cfg.ID) {
		return cfg, usagef("--gate-id %q: want 8 hex digits", gateID)
	}
	copy(cfg.ID[:], id)
	before, after, ok := strings.Cut(window, ",")
	if !ok {
		return cfg, usagef("--window %q: want BEFORE,AFTER such as 2h,1h", window)
	}
	if cfg.Before, err = time.ParseDuration(before); err == nil {
		cfg.After, err = time.ParseDuration(after)
	}
	if err != nil || cfg.Before < 0 || cfg.After < 0 || cfg.Before+cfg.After == 0 {
		return cfg, usagef("--window %q: want BEFORE,AFTER such as 2h,1h", window)
	}
	cfg.Location = time.Local
	if zone != "" {
		if cfg.Location, err = time.LoadLocation(zone); err != nil {
			return cfg, usagef("--timezone %q: %v", zone, err)
		}
	}
	if now != "" {
		t, err := time.Parse(time.RFC3339, now)
		if err != nil {
			return cfg, usagef("--now %q: want RFC 3339, such as 2026-12-05T19:00:00+08:00", now)
		}
		cfg.Now = func() time.Time { return t }
	}
	// The command line is checked first: a usage error is exit 2 whatever
	// the files hold.
	pem, err := os.ReadFile(keysFile)
	if err != nil {
		return cfg, fmt.Errorf("issuer keys: %w", err)
	}
	if cfg.Keys, err = ticketfmt.ParseKeySetPEM(pem); err != nil {
		return cfg, fmt.Errorf("%s: %w", keysFile, err)
	}
	return cfg, nil
}

// gateExchange uploads the journal and downloads the deny list, when a
// server is configured; a failure is reported and the gate goes on
// offline. The deny list is downloaded even when the upload fails (the
// records not uploaded are tried again at the next exchange): an upload
// the server keeps refusing must not freeze the deny list.
func gateExchange(ctx context.Context, w io.Writer, g *gate.Gate, j *journal.Journal, srv *apiclient.Client) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ans, err := journal.Upload(ctx, j, srv)
	if len(ans.CheckedTwice) > 0 {
		fmt.Fprintf(w, "simtix: the server saw tickets checked twice (a cloned card?): %v\n", ans.CheckedTwice)
	}
	if err != nil {
		fmt.Fprintf(w, "simtix: journal upload failed, kept for later: %v\n", err)
	}
	deny, err := srv.Deny(ctx)
	if err != nil {
		fmt.Fprintf(w, "simtix: deny list download failed: %v\n", err)
		return
	}
	g.SetDenyList(deny)
}

// openReader connects to PC/SC and checks that it knows reader.
func openReader(reader string) (*pcsc.Context, error) {
	pc, err := pcsc.Open()
	if err != nil {
		return nil, err
	}
	names, err := pc.Readers()
	if err != nil {
		return nil, errors.Join(err, pc.Close())
	}
	if slices.Contains(names, reader) {
		return pc, nil
	}
	known := "PC/SC knows no readers (is pcscd running? scripts/pcscd.sh start)"
	if len(names) > 0 {
		known = fmt.Sprintf("the readers are %q ('simtix readers' lists them)", names)
	}
	return nil, errors.Join(fmt.Errorf("--reader %q: %w; %s", reader, pcsc.ErrNoReader, known), pc.Close())
}

// gateLoop checks each card presented in reader until ctx ends.
func gateLoop(ctx context.Context, w io.Writer, pc *pcsc.Context, reader string, g *gate.Gate, report func(gate.Verdict) error, exchange func()) error {
	for {
		if err := pc.WaitCard(ctx, reader); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("waiting for a card in %q: %w", reader, err)
		}
		c, err := pc.Connect(reader, pcsc.ConnectOptions{})
		if err != nil {
			fmt.Fprintf(w, "simtix: %v\n", err)
		} else {
			v, err := g.Check(ctx, c)
			_ = c.Close()
			if err != nil {
				fmt.Fprintf(w, "simtix: %v\n", err)
			} else if err := report(v); err != nil {
				return err
			}
			exchange()
		}
		if err := pc.WaitRemoved(ctx, reader); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("waiting for the card to leave %q: %w", reader, err)
		}
	}
}

// verdictDoc is a verdict as `gate --json` prints it.
func verdictDoc(v gate.Verdict, id [4]byte, model timingModelFunc) gateJSON {
	d := gateJSON{Accepted: v.Accepted, Ticket: v.Ticket, GateID: hex.EncodeToString(id[:]), APDUs: v.APDUs}
	if v.Reason != nil {
		d.Reason = v.Reason.Error()
	}
	if v.Serial != (ticketfmt.Serial{}) {
		s := v.Serial
		d.Serial = &s
	}
	if v.Record != nil {
		d.Time = v.Record.Time.String()
	}
	d.Timing = model(v)
	return d
}

func printVerdict(w io.Writer, d gateJSON) {
	verdict := "ACCEPTED"
	if !d.Accepted {
		verdict = "REFUSED "
	}
	fmt.Fprint(w, verdict)
	if d.Ticket != nil {
		t := d.Ticket
		fmt.Fprintf(w, " %v %s %v %v", t.ID, t.Seller, t.Date, t.Time)
		if t.Seat != "" {
			fmt.Fprintf(w, " seat %s", t.Seat)
		}
	}
	if d.Serial != nil {
		fmt.Fprintf(w, " card %v", *d.Serial)
	}
	if d.Reason != "" {
		fmt.Fprintf(w, ": %s", d.Reason)
	}
	fmt.Fprintf(w, " (%d APDUs", d.APDUs)
	if d.Timing != nil {
		fmt.Fprintf(w, ", %s", d.Timing)
	}
	fmt.Fprintln(w, ")")
}
