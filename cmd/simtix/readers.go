package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/simtix/simtix/hostlib/pcsc"
)

func newReadersCmd() *cobra.Command {
	var wait int
	var timeout time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "readers [--wait N] [--timeout D]",
		Short: "List the PC/SC readers and the cards in them",
		Long: `List the PC/SC readers and the ATR of the card in each. With --wait N, first
wait (without polling) until N readers hold a card, or --timeout passes: a
script's way to know that its emulated cards are ready.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			pc, err := pcsc.Open()
			if err != nil {
				return err
			}
			defer pc.Close()
			if wait > 0 {
				wctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				if err := waitCards(wctx, pc, wait); err != nil {
					return fmt.Errorf("waiting for %d cards: %w", wait, err)
				}
			}
			type reader struct {
				Name string `json:"name"`
				ATR  string `json:"atr,omitempty"`
			}
			var out []reader
			names, err := pc.Readers()
			if err != nil {
				return err
			}
			for _, n := range names {
				r := reader{Name: n}
				if atr, err := cardATR(ctx, pc, n); err == nil {
					r.ATR = atr
				}
				out = append(out, r)
			}
			if asJSON {
				if out == nil {
					out = []reader{}
				}
				return writeJSON(cmd, out)
			}
			if len(out) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no readers (is pcscd running? scripts/pcscd.sh start)")
			}
			for _, r := range out {
				card := "no card"
				if r.ATR != "" {
					card = "card, ATR " + r.ATR
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-26s %s\n", r.Name, card)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&wait, "wait", 0, "wait until this many readers hold a card")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long --wait waits")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	return cmd
}

// cardATR returns the ATR of the card in reader, or an error if none.
func cardATR(ctx context.Context, pc *pcsc.Context, reader string) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := pc.WaitCard(wctx, reader); err != nil {
		return "", err
	}
	card, err := pc.Connect(reader, pcsc.ConnectOptions{})
	if err != nil {
		return "", err
	}
	defer card.Close()
	atr, err := card.ATR()
	if err != nil {
		return "", err
	}
	return strings.ToUpper(fmt.Sprintf("%X", atr)), nil
}

// waitCards waits until n readers hold a card.
func waitCards(ctx context.Context, pc *pcsc.Context, n int) error {
	for {
		names, err := pc.Readers()
		if err != nil {
			return err
		}
		present := 0
		for _, name := range names {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
			if pc.WaitCard(wctx, name) == nil {
				present++
			}
			cancel()
		}
		if present >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d present: %w", present, n, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
