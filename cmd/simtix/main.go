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
	groupCmd(root,
		newCardCmd(),
		newServerCmd(),
		newOrderCmd(),
		newMSISDNCmd(),
		newTicketsCmd(),
		newSyncCmd(),
		newGateCmd(),
		newReadersCmd(),
		newDemoCmd(),
		newTicketCmd(),
		newKeysCmd(),
		newVersionCmd(),
	)
	strictHelp(root)
	// Cobra's completion command (bash, fish, powershell, zsh) is a group
	// too; made now rather than at Execute, so that it is one of ours.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			groupCmd(c)
		}
	}
	return root
}

// strictHelp makes cobra's `simtix help [COMMAND...]` take a command it
// does not know as a usage error, rather than printing the root's help.
func strictHelp(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	help, _, err := root.Find([]string{"help"})
	if err != nil || help.Run == nil {
		return
	}
	run := help.Run
	help.Run = nil
	help.RunE = func(c *cobra.Command, args []string) error {
		cmd, rest, err := c.Root().Find(args)
		if err != nil {
			return usageError{err}
		}
		if len(rest) > 0 {
			return unknownCommand(cmd, rest)
		}
		run(c, args)
		return nil
	}
}

// groupCmd makes cmd a group of the commands subs (added to those it has):
// alone it prints its help (exit 0); followed by a word that names none of
// its commands it is a usage error (exit 2) that names them. (Cobra runs a
// group without RunE as help whatever follows it, exit 0.)
func groupCmd(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.AddCommand(subs...)
	cmd.Args = unknownCommand
	cmd.DisableFlagsInUseLine = true // "simtix card" alone is its help
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return cmd
}

// unknownCommand refuses any argument of a group: had it named one of the
// group's commands, cobra would have run that command.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	hint := ""
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	if len(names) == 0 {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return usagef("unknown command %q for %q%s; its commands are: %s", args[0], cmd.CommandPath(), hint, strings.Join(names, ", "))
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
