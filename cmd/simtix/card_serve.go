package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/emulator/vpcd"
	"github.com/simtix/simtix/internal/imagefile"
	"github.com/simtix/simtix/nvm"
)

func newCardServeCmd() *cobra.Command {
	var image, contactAddr, contactlessAddr, fault string
	var t0, verbose bool
	cmd := &cobra.Command{
		Use:   "serve --image FILE [--vpcd HOST:PORT] [--contactless-vpcd HOST:PORT] [--t0] [--fault write:N|tear:N]",
		Short: "Run the card as a PC/SC card through pcscd's virtual reader (vpcd) until interrupted",
		Long: `Run the card as a PC/SC card through pcscd's virtual reader (vsmartcard's
vpcd): its contact interface in one reader slot, its contactless interface in
another, until interrupted (Ctrl-C or SIGTERM: exit status 0). The card is
saved after every command that writes, and once more when it stops.

pcscd must run with the vpcd driver: scripts/pcscd.sh start does that (its
slot n listens on port 35963+n; the defaults are its first card, the readers
"Virtual PCD 00 00" and "Virtual PCD 00 01"; --slots 4 gives a second card,
ports 35965 and 35966). When pcscd is not there yet, or restarts, the card
dials again every 200 ms and comes back by itself. vpcd takes one card per
slot: a second card on a busy slot waits until the first leaves.

--fault tear:N cuts the power at the Nth write since power-on: the reader sees
the card removed (the torn command gets an empty response, the next ones fail
with "card removed"), and the card comes back a second later, with the
command fully applied or not at all. --fault write:N makes the Nth write fail
(6400).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, a := range []struct{ flag, addr string }{{"--vpcd", contactAddr}, {"--contactless-vpcd", contactlessAddr}} {
				if _, _, err := net.SplitHostPort(a.addr); err != nil {
					return usagef("%s %q: want HOST:PORT", a.flag, a.addr)
				}
			}
			if contactAddr == contactlessAddr {
				return usagef("--vpcd and --contactless-vpcd are both %s: each interface needs its own slot", contactAddr)
			}
			opts := emulator.Options{T0: t0}
			if fault != "" {
				var err error
				if opts.Fault, err = nvm.ParseFault(fault); err != nil {
					return usageError{err}
				}
			}
			card, err := emulator.Open(image, opts)
			if errors.Is(err, imagefile.ErrLocked) {
				return fmt.Errorf("%w (is another simtix program, such as a second card serve, using this card?)", err)
			}
			if err != nil {
				return err
			}
			defer card.Close()

			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			serial := "?"
			if snap, err := card.Snapshot(); err == nil {
				serial = snap.Serial.String()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "card %s (%s) served through vpcd: contact on %s, contactless on %s; Ctrl-C or SIGTERM stops it\n",
				serial, image, describeSlot(contactAddr), describeSlot(contactlessAddr))

			serveErr := vpcd.ServeCard(cmd.Context(), card, contactAddr, contactlessAddr, vpcd.WithLogger(logger))
			if err := card.Close(); err != nil {
				return errors.Join(serveErr, fmt.Errorf("saving the card: %w", err))
			}
			return serveErr
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "card image file")
	cmd.Flags().StringVar(&contactAddr, "vpcd", vpcd.DefaultContactAddr, "vpcd slot (HOST:PORT) for the contact interface")
	cmd.Flags().StringVar(&contactlessAddr, "contactless-vpcd", vpcd.DefaultContactlessAddr, "vpcd slot (HOST:PORT) for the contactless interface")
	cmd.Flags().BoolVar(&t0, "t0", false, "run the contact interface in T=0 mode")
	cmd.Flags().StringVar(&fault, "fault", "", "inject a fault: write:N (the Nth write fails, 6400) or tear:N (power cut at the Nth write)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log power events and every APDU (on stderr)")
	_ = cmd.MarkFlagRequired("image")
	return cmd
}

// describeSlot names a vpcd address and, in scripts/pcscd.sh's layout, its
// reader.
func describeSlot(addr string) string {
	if slot, ok := vpcd.SlotOf(addr); ok {
		return fmt.Sprintf("%s (reader %q)", addr, vpcd.ReaderName(slot))
	}
	return addr
}
