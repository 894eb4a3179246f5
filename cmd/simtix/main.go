// Command simtix is the one command line of simtix: the emulated card, the
// ticket center and virtual ticket box, and the handset and gate roles.
// It holds flags and wiring only; the work is done by the packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit statuses (cli.md).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks an error in the command line itself: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCoder lets a command choose its own exit status (card apdu after a
// tear exits 3).
type exitCoder interface{ ExitCode() int }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "simtix: %v\n", err)
	var ec exitCoder
	var ue usageError
	switch {
	case errors.As(err, &ec):
		return ec.ExitCode()
	case errors.As(err, &ue), isCobraUsage(err):
		fmt.Fprintln(stderr, "Run 'simtix --help' or 'simtix COMMAND --help' for usage.")
		return exitUsage
	}
	return exitError
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "simtix",
		Short: "Electronic tickets on SIM cards, with a virtual ticket box for those that do not fit",
		Long: `simtix keeps electronic tickets on SIM cards and, for the tickets that do
not fit, in a virtual ticket box on the network side that moves them onto the
card as room appears.

The command line covers the emulated card, the ticket center and virtual
ticket box server, and the handset and gate roles. See docs/ and the spec.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newCardCmd(),
		newServerCmd(),
		newOrderCmd(),
		newTicketsCmd(),
		newSyncCmd(),
		newGateCmd(),
		newReadersCmd(),
		newDemoCmd(),
		newTicketCmd(),
		newKeysCmd(),
		newVersionCmd(),
	)
	return root
}

// isCobraUsage reports errors cobra makes about the command line itself.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
