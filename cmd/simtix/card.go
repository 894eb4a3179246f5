package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/cardview"
	"github.com/simtix/simtix/internal/imagefile"
	"github.com/simtix/simtix/nvm"
	"github.com/simtix/simtix/ticketfmt"
)

// exitTorn is card apdu's exit status after a tear (cli.md).
const exitTorn = 3

// tornError reports a tear: exit status 3.
type tornError struct{ err error }

func (e tornError) Error() string { return e.err.Error() }
func (e tornError) Unwrap() error { return e.err }
func (e tornError) ExitCode() int { return exitTorn }

func newCardCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "card",
		Short: "The emulated SIM card: personalise it, send it APDUs, show its ticket file",
	}
	return groupCmd(cmd, newCardNewCmd(), newCardAPDUCmd(), newCardShowCmd(), newCardServeCmd())
}

// readMasterKey reads a master key file: 64 hex digits (spaces and newlines
// ignored).
func readMasterKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	clean := strings.Join(strings.Fields(string(b)), "")
	key, err := hex.DecodeString(clean)
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("master key %s: want 64 hex digits (32 bytes)", path)
	}
	return key, nil
}

func newCardNewCmd() *cobra.Command {
	var image, serialHex, masterFile string
	var capacity, maxTickets int
	cmd := &cobra.Command{
		Use:   "new --image FILE --serial HEX20 --master-key FILE",
		Short: "Personalise a new card image (refuses to overwrite an existing one)",
		Long: `Personalise a new card image: the card's keys are derived from the issuer's
master secret (a file of 64 hex digits, such as a server's DATA_DIR/master.key)
and its serial, and a fresh card key pair is made on the card.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			serial, err := ticketfmt.ParseSerial(serialHex)
			if err != nil {
				return usageError{err}
			}
			if capacity < applet.MinCapacity || capacity > applet.MaxCapacity {
				return usagef("--capacity %d: want %d to %d bytes", capacity, applet.MinCapacity, applet.MaxCapacity)
			}
			if maxTickets < 1 || maxTickets > 255 {
				return usagef("--max-tickets %d: want 1 to 255", maxTickets)
			}
			master, err := readMasterKey(masterFile)
			if err != nil {
				return err
			}
			p := applet.Personalisation{Serial: serial, Capacity: capacity, MaxTickets: maxTickets, Master: master}
			if err := emulator.Create(image, p); err != nil {
				if errors.Is(err, imagefile.ErrExists) {
					return fmt.Errorf("%w (card new never overwrites a card: choose another --image)", err)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "card %v personalised in %s: %d-byte ticket file, %d tickets at most\n",
				serial, image, capacity, maxTickets)
			return nil
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "card image file to create")
	cmd.Flags().StringVar(&serialHex, "serial", "", "card serial, 20 hex digits")
	cmd.Flags().StringVar(&masterFile, "master-key", "", "file holding the issuer's master secret (64 hex digits)")
	cmd.Flags().IntVar(&capacity, "capacity", applet.DefaultCapacity, "ticket file capacity in bytes")
	cmd.Flags().IntVar(&maxTickets, "max-tickets", applet.DefaultMaxTickets, "maximum ticket count")
	for _, f := range []string{"image", "serial", "master-key"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func parseInterface(s string) (applet.Interface, error) {
	switch s {
	case "contact":
		return applet.Contact, nil
	case "contactless":
		return applet.Contactless, nil
	}
	return 0, usagef("--interface %q: want contact or contactless", s)
}

func newCardAPDUCmd() *cobra.Command {
	var image, iface, fault string
	var t0 bool
	cmd := &cobra.Command{
		Use:   "apdu --image FILE [--interface contact|contactless] [--t0] [--fault write:N|tear:N] APDU...",
		Short: "Power the card on and send it APDUs, one response line each",
		Long: `Power the card on, send each APDU in order on one interface (default
contact), and print one line per response: the response data and status word
in hex. The card is saved as it writes. Exit status 0 even when a status word
is an error; 2 when an argument is not hex (nothing is sent); 3 after a tear
(--fault tear:N), with no line for the torn APDU or those after it.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := parseInterface(iface)
			if err != nil {
				return err
			}
			opts := emulator.Options{T0: t0}
			if fault != "" {
				if opts.Fault, err = nvm.ParseFault(fault); err != nil {
					return usageError{err}
				}
			}
			apdus := make([][]byte, len(args))
			for n, a := range args {
				if apdus[n], err = parseHexArg(a); err != nil {
					return err
				}
			}
			card, err := openImage(image, opts)
			if err != nil {
				return err
			}
			defer card.Close()
			ctx := cmd.Context()
			if _, err := card.PowerOn(ctx, i); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for n, a := range apdus {
				resp, err := card.Transmit(ctx, i, a)
				if errors.Is(err, emulator.ErrTorn) {
					return tornError{fmt.Errorf("APDU %d of %d: %w; the card comes back on the next power-on with the command fully applied or not at all", n+1, len(apdus), err)}
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(out, strings.ToUpper(hex.EncodeToString(resp)))
			}
			return card.Close()
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "card image file")
	cmd.Flags().StringVar(&iface, "interface", "contact", "contact or contactless")
	cmd.Flags().BoolVar(&t0, "t0", false, "run the contact interface in T=0 mode")
	cmd.Flags().StringVar(&fault, "fault", "", "inject a fault: write:N (the Nth write fails, 6400) or tear:N (power cut at the Nth write)")
	_ = cmd.MarkFlagRequired("image")
	return cmd
}

// openImage opens a card image, locked, for card apdu, card show, and the
// roles' --image; an image in use elsewhere is refused with what to do.
func openImage(path string, opts emulator.Options) (*emulator.Card, error) {
	card, err := emulator.Open(path, opts)
	if errors.Is(err, imagefile.ErrLocked) {
		return nil, fmt.Errorf("%w: another program (card serve, card apdu, sync or gate) has this card open; let it finish or stop it, then try again", err)
	}
	return card, err
}

func newCardShowCmd() *cobra.Command {
	var image string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show --image FILE",
		Short: "Draw the card's ticket file: used, free, reclaimable, each ticket with its size and state",
		Long: `Draw the card's ticket file: capacity, used, free and reclaimable bytes, and
each ticket with the room it takes in the file (its encoding plus the
per-ticket record overhead) and its state. With --json, each ticket's "size"
is its encoding alone (as in order and tickets --json) and "stored_bytes" the
room it takes.

The image is locked while it is read, as by any program that opens it: an
image in use (by card serve, card apdu, sync or gate) is refused.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			card, err := openImage(image, emulator.Options{})
			if err != nil {
				return err
			}
			snap, err := card.Snapshot()
			if err = errors.Join(err, card.Close()); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, showJSON(snap))
			}
			if err := cardview.Render(cmd.OutOrStdout(), snap); err != nil {
				return err
			}
			if len(snap.Tickets) > 0 {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "\n  bytes: the room a ticket takes in the ticket file, its encoding plus %d bytes of record overhead\n", snap.Overhead)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "card image file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	_ = cmd.MarkFlagRequired("image")
	return cmd
}

// cardJSON is card show's --json document.
type cardJSON struct {
	Serial       ticketfmt.Serial `json:"serial"`
	Capacity     int              `json:"capacity"`
	MaxTickets   int              `json:"max_tickets"`
	Overhead     int              `json:"overhead"`
	Used         int              `json:"used"`
	Free         int              `json:"free"`
	Reclaimable  int              `json:"reclaimable"`
	Epoch        uint32           `json:"epoch"`
	Counter      uint32           `json:"counter"`
	Certificate  bool             `json:"certificate"`
	Notification int              `json:"pending_notification"`
	Tickets      []ticketJSON     `json:"tickets"`
}

type ticketJSON struct {
	ID ticketfmt.ID `json:"id"`
	// Size is the ticket's encoded length, as in order and tickets --json.
	Size int `json:"size"`
	// StoredBytes is the room the ticket takes in the ticket file: Size
	// plus the per-ticket record overhead (cardJSON.Overhead).
	StoredBytes int               `json:"stored_bytes"`
	State       string            `json:"state"`
	CheckedBy   string            `json:"checked_by,omitempty"`
	CheckedAt   string            `json:"checked_at,omitempty"`
	Ticket      *ticketfmt.Ticket `json:"ticket"`
}

func showJSON(s applet.Snapshot) cardJSON {
	doc := cardJSON{Serial: s.Serial, Capacity: s.Capacity, MaxTickets: s.MaxTickets, Overhead: s.Overhead,
		Used: s.Capacity - s.Free, Free: s.Free, Reclaimable: s.Reclaimable, Epoch: s.Epoch, Counter: s.Counter,
		Certificate: s.Certificate != nil, Notification: int(s.Notification.Pending), Tickets: []ticketJSON{}}
	for _, t := range s.Tickets {
		tj := ticketJSON{ID: t.Ticket.ID, Size: len(t.Raw), StoredBytes: t.Size(), State: "unchecked", Ticket: t.Ticket}
		if t.Check != nil {
			tj.State = "checked"
			tj.CheckedBy = hex.EncodeToString(t.Check.Gate[:])
			tj.CheckedAt = t.Check.Time.String()
		}
		doc.Tickets = append(doc.Tickets, tj)
	}
	return doc
}

func writeJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
