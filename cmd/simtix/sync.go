package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/ticketfmt"
)

// syncJSON is `sync --json`'s document for one sync.
type syncJSON struct {
	Serial      ticketfmt.Serial `json:"serial"`
	Planned     int              `json:"planned"`
	Applied     int              `json:"applied"`
	Refused     string           `json:"refused,omitempty"`
	Stored      int              `json:"stored"`
	Checked     int              `json:"checked"`
	Free        int              `json:"free"`
	Reclaimable int              `json:"reclaimable"`
	Waiting     int              `json:"waiting"`
	Counter     uint32           `json:"counter"`
	Epoch       uint32           `json:"epoch"`
}

func syncDoc(r handset.Result) syncJSON {
	d := syncJSON{Serial: r.Serial, Planned: r.Planned, Applied: r.Steps, Stored: r.Status.Stored, Checked: r.Status.Checked,
		Free: r.Status.Free, Reclaimable: r.Status.Reclaimable, Waiting: r.Waiting, Counter: r.Status.Counter, Epoch: r.Status.Epoch}
	if r.Refused != 0 {
		d.Refused = r.Refused.String()
	}
	return d
}

// watchJSON is one line of `sync --watch --json`.
type watchJSON struct {
	Event  string    `json:"event"`
	Time   time.Time `json:"time"`
	Why    string    `json:"why,omitempty"`
	Sync   *syncJSON `json:"sync,omitempty"`
	Number int       `json:"notification,omitempty"`
	Due    int       `json:"due,omitempty"`
	Error  string    `json:"error,omitempty"`
}

func newSyncCmd() *cobra.Command {
	var serverURL, give, take string
	var card cardFlags
	var watch, asJSON bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "sync --server URL (--reader NAME | --image FILE) [--watch] [--give ID --take ID]",
		Short: "The handset: sync the card with the virtual ticket box, once or watching",
		Long: `The handset role: sync the card with the virtual ticket box (network.md):
the box's challenge, BEGIN SYNC and LIST from the card, the box's plan run in
order (certificate, deletions of checked tickets, stores), and a closing
round so that the box's view is current. Safe to repeat and to interrupt.

With --give ID --take ID, the sync exchanges ticket TAKE from the box for
ticket GIVE on the card (a full card).

With --watch, it syncs, then polls the card's STATUS every --interval: on a
notification (a gate checked a ticket) it FETCHes it, syncs and answers
TERMINAL RESPONSE; and it long-polls the box so that a ticket ordered while
the card has room is stored at once. It runs until interrupted; when the
card leaves the reader (--reader), it waits for it and watches again. It
prints each event on stdout, and each failed sync (retried) on stderr; with
--json it prints one JSON document per event on stdout, one per line, failed
syncs too ("event":"error").

A card image (--image) is locked while in use: to let a gate use the same
card at the same time, serve it with 'simtix card serve' and use --reader.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := card.check(); err != nil {
				return err
			}
			var ex *handset.Exchange
			if give != "" || take != "" {
				g, err1 := ticketfmt.ParseID(give)
				t, err2 := ticketfmt.ParseID(take)
				if err := errors.Join(err1, err2); err != nil {
					return usagef("--give and --take name two tickets (20 hex digits each): %v", err)
				}
				if watch {
					return usagef("--give/--take make one sync: not with --watch")
				}
				ex = &handset.Exchange{Give: g, Take: t}
			}
			box, err := apiclient.New(serverURL, "", nil)
			if err != nil {
				return usageError{err}
			}
			ctx := cmd.Context()
			c, err := card.open(ctx, applet.Contact)
			if err != nil {
				return err
			}
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			h := &handset.Handset{Card: hostlib.NewApplet(c, hostlib.ClientOptions{}), Box: box}
			out := cmd.OutOrStdout()
			if !watch {
				res, err := h.Sync(ctx, ex)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd, syncDoc(res))
				}
				printSync(out, res)
				return nil
			}
			// Text: events on stdout, errors (retried) on stderr. JSON:
			// every event, errors too, one document a line on stdout.
			opts := handset.WatchOptions{Interval: interval, OnEvent: func(e handset.Event) {
				if asJSON {
					printWatchJSON(out, e)
				} else {
					printWatch(out, cmd.ErrOrStderr(), e)
				}
			}}
			for {
				err = h.Watch(ctx, opts)
				if ctx.Err() != nil {
					return nil // interrupted: the normal end of --watch
				}
				if card.reader == "" || !errors.Is(err, hostlib.ErrCardRemoved) && !errors.Is(err, hostlib.ErrCardReset) {
					return err
				}
				// The card left the reader (or a served card restarted):
				// wait for it to come back and watch again.
				fmt.Fprintf(cmd.ErrOrStderr(), "simtix: %v; waiting for the card in %q\n", err, card.reader)
				c.Close()
				// Give pcscd its presence poll (400 ms) to see the card
				// gone, rather than connecting again and again to a card
				// that is no longer there.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
				next, err := card.reopen(ctx, applet.Contact)
				if err != nil {
					c = nil
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				c = next
				h.Card = hostlib.NewApplet(c, hostlib.ClientOptions{})
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&serverURL, "server", "http://127.0.0.1:8080", "server URL")
	f.StringVar(&card.reader, "reader", "", "PC/SC reader of the card's contact interface")
	f.StringVar(&card.image, "image", "", "card image, run in-process")
	f.BoolVar(&watch, "watch", false, "keep watching: sync on each notification and each due ticket")
	f.DurationVar(&interval, "interval", time.Second, "STATUS polling interval with --watch")
	f.StringVar(&give, "give", "", "exchange: the ticket on the card to give back")
	f.StringVar(&take, "take", "", "exchange: the ticket from the box to take")
	f.BoolVar(&asJSON, "json", false, "print JSON (one document per event with --watch)")
	return cmd
}

func printSync(w io.Writer, r handset.Result) {
	s := r.Status
	fmt.Fprintf(w, "card %v: %d of %d steps applied", r.Serial, r.Steps, r.Planned)
	if r.Refused != 0 {
		fmt.Fprintf(w, " (the card refused the next: %v)", r.Refused)
	}
	fmt.Fprintf(w, "; on the card: %d tickets (%d checked), %d bytes free of %d; in the box: %d\n",
		s.Stored, s.Checked, s.AvailableBytes(), s.Capacity, r.Waiting)
}

// printWatch prints an event of sync --watch as text: on w, or on errW for
// an error (which the watch retries).
func printWatch(w, errW io.Writer, e handset.Event) {
	ts := time.Now().Format("15:04:05.000")
	switch e.Kind {
	case handset.EventSync:
		fmt.Fprintf(w, "%s sync (%s): ", ts, e.Why)
		printSync(w, e.Result)
	case handset.EventNotification:
		fmt.Fprintf(w, "%s notification %d: %d tickets, %d checked, %d bytes available\n", ts, e.Notification.Number,
			e.Notification.Status.Stored, e.Notification.Status.Checked, e.Notification.Status.AvailableBytes())
	case handset.EventDue:
		fmt.Fprintf(w, "%s the box has %d tickets due to the card\n", ts, e.Due)
	case handset.EventError:
		fmt.Fprintf(errW, "simtix: %s sync (%s) failed, will retry: %v\n", ts, e.Why, e.Err)
	}
}

func printWatchJSON(w io.Writer, e handset.Event) {
	d := watchJSON{Event: string(e.Kind), Time: time.Now().UTC(), Why: e.Why, Due: e.Due}
	switch e.Kind {
	case handset.EventSync:
		s := syncDoc(e.Result)
		d.Sync = &s
	case handset.EventNotification:
		d.Number = int(e.Notification.Number)
	case handset.EventError:
		d.Error = e.Err.Error()
	}
	b, _ := json.Marshal(d)
	fmt.Fprintf(w, "%s\n", b)
}
