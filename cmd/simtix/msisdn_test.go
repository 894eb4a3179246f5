package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/issuer"
)

// TestMSISDN: an operator registers a card's MSISDN; orders may then name
// the carrier by it; another card cannot take it, and an unknown MSISDN is
// refused.
func TestMSISDN(t *testing.T) {
	r := newRoles(t)
	token := r.srv.File(issuer.OperatorTokenFile)
	code, _, errOut := simtix(t, "order", "--server", r.srv.URL, "--token-file", token, "--carrier", "+8613800138000", "--file", "corpus")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "8613800138000", "an unknown MSISDN is refused")

	out := simtixOK(t, "msisdn", "--server", r.srv.URL, "--token-file", token, "--serial", testSerial, "+8613800138000")
	assert.Contains(t, out, "MSISDN +8613800138000 registered")
	// Again, and in JSON: harmless.
	out = simtixOK(t, "msisdn", "--server", r.srv.URL, "--token-file", token, "--serial", testSerial, "--json", "+8613800138000")
	assert.JSONEq(t, `{"serial":"`+testSerial+`","msisdn":"+8613800138000"}`, out)

	ans := decodeJSON[api.OrderAnswer](t, simtixOK(t, "order", "--server", r.srv.URL, "--token-file", token,
		"--carrier", "+8613800138000", "--file", "corpus", "--json"))
	assert.Equal(t, testSerial, ans.Carrier.String())
	assert.Len(t, ans.Tickets, 24)

	code, _, errOut = simtix(t, "msisdn", "--server", r.srv.URL, "--token-file", token, "--serial", "89860012345678909999", "+8613800138000")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "registered for another card")

	for _, args := range [][]string{
		{"msisdn", "--server", r.srv.URL, "--token-file", token, "--serial", testSerial},
		{"msisdn", "--server", r.srv.URL, "--token-file", token, "--serial", "12", "+8613800138000"},
	} {
		code, _, errOut := simtix(t, args...)
		require.Equal(t, exitUsage, code, "%q: %s", args, errOut)
	}
	code, _, errOut = simtix(t, "msisdn", "--server", r.srv.URL, "--token-file", token, "--serial", testSerial, "not-a-number")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "5 to 15 digits")
}
