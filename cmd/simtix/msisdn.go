package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/ticketfmt"
)

// newMSISDNCmd registers the MSISDN of a card, so that orders can name the
// carrier by it (cli.md: "the card's serial, or the MSISDN registered for
// it").
func newMSISDNCmd() *cobra.Command {
	var serverURL, tokenFile, serialHex string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "msisdn --server URL --token-file FILE --serial HEX20 MSISDN",
		Short: "Register the MSISDN of a card (operator), so that orders can name it",
		Long: `Register the MSISDN (the phone number, 5 to 15 digits, optionally after +)
of the card with serial HEX20, as an operator: 'simtix order --carrier MSISDN'
then orders for that card. Registering the same MSISDN again is harmless; an
MSISDN registered for another card is refused (409).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("give one MSISDN, such as +8613800138000")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, err := ticketfmt.ParseSerial(serialHex)
			if err != nil {
				return usagef("--serial: %v", err)
			}
			c, err := apiclient.New(serverURL, "", nil)
			if err != nil {
				return usageError{err}
			}
			token, err := readToken(tokenFile)
			if err != nil {
				return err
			}
			if err := c.WithToken(token).SetMSISDN(cmd.Context(), serial, args[0]); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, struct {
					Serial ticketfmt.Serial `json:"serial"`
					MSISDN string           `json:"msisdn"`
				}{serial, args[0]})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "card %v: MSISDN %s registered\n", serial, args[0])
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&serverURL, "server", "http://127.0.0.1:8080", "server URL")
	f.StringVar(&tokenFile, "token-file", "", "operator token file (DATA_DIR/operator.token)")
	f.StringVar(&serialHex, "serial", "", "the card's serial, 20 hex digits")
	f.BoolVar(&asJSON, "json", false, "print one JSON document")
	_ = cmd.MarkFlagRequired("token-file")
	_ = cmd.MarkFlagRequired("serial")
	return cmd
}
