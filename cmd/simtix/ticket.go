package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/simtix/simtix/ticketfmt"
)

func newTicketCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ticket",
		Short: "Decode, explain and verify encoded tickets and card certificates",
	}
	return groupCmd(cmd, newTicketExplainCmd())
}

func newTicketExplainCmd() *cobra.Command {
	var keysFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain HEX",
		Short: "Decode a ticket (E1) or card certificate (E5) strictly and explain its bytes",
		Long: `Decode a ticket (E1) or card certificate (E5) as strictly as the card and
the gates do, print each field with its offset, bytes and meaning, and with
--issuer-keys verify its signature. Hex may be upper or lower case, with spaces.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := parseHexArg(args[0])
			if err != nil {
				return err
			}
			fields, err := ticketfmt.Explain(raw)
			if err != nil {
				return err
			}
			verdict := ""
			if keysFile != "" {
				verdict, err = verifyEncoded(raw, keysFile)
				if err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(cmd, struct {
					Fields   []ticketfmt.FieldInfo `json:"fields"`
					Verified string                `json:"verified,omitempty"`
				}{fields, verdict})
			}
			for _, f := range fields {
				fmt.Fprintf(out, "%4d  %-8s %-30s %s\n", f.Offset, strings.ToUpper(hex.EncodeToString(f.Header)), f.Name, f.Meaning)
			}
			if verdict != "" {
				fmt.Fprintln(out, verdict)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keysFile, "issuer-keys", "", "PEM file of issuer public keys to verify the signature with")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	return cmd
}

func verifyEncoded(raw []byte, keysFile string) (string, error) {
	pemBytes, err := os.ReadFile(keysFile)
	if err != nil {
		return "", err
	}
	keys, err := ticketfmt.ParseKeySetPEM(pemBytes)
	if err != nil {
		return "", err
	}
	if raw[0] == byte(ticketfmt.TagCertificate) {
		c, err := ticketfmt.UnmarshalCertificate(raw)
		if err != nil {
			return "", err
		}
		if err := c.Verify(keys); err != nil {
			return "", err
		}
		return fmt.Sprintf("signature verified with issuer key %v", c.KeyID), nil
	}
	t, err := ticketfmt.Unmarshal(raw)
	if err != nil {
		return "", err
	}
	if err := t.Verify(keys); err != nil {
		return "", err
	}
	return fmt.Sprintf("signature verified with issuer key %v", t.KeyID), nil
}

// parseHexArg decodes a hex argument: upper or lower case, spaces ignored.
func parseHexArg(s string) ([]byte, error) {
	clean := strings.Join(strings.Fields(s), "")
	b, err := hex.DecodeString(clean)
	if err != nil {
		return nil, usagef("%q is not hex: %v", s, err)
	}
	return b, nil
}
