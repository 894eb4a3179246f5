package hostlib

import (
	"context"
	"fmt"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardproto"
)

// maxGetResponses bounds a response given in parts: a card that keeps
// answering 61xx is broken, not generous.
const maxGetResponses = 512

// Response is a command's complete answer.
type Response struct {
	// Data is the whole response data, joined from its parts.
	Data []byte
	// SW is the final status word.
	SW apdu.StatusWord
	// Notification is the length of the proactive command (the simtix
	// storage-changed notification) the card has pending, from a final
	// 91xx, or 0.
	Notification int
}

// ClientOptions tune how a Client sends commands.
type ClientOptions struct {
	// Extended sends command data over 255 bytes as one extended APDU
	// instead of a chain of short ones. Off by default: every reader takes
	// chaining, not every reader takes extended APDUs.
	Extended bool
	// ChainSize is the data size of each chained part (default and maximum
	// 255).
	ChainSize int
}

// Client sends commands over a Transport and handles the transport-level
// rules of ISO/IEC 7816-4 for its caller.
type Client struct {
	t    Transport
	opts ClientOptions
}

// NewClient returns a Client over t.
func NewClient(t Transport, opts ClientOptions) *Client {
	if opts.ChainSize <= 0 || opts.ChainSize > apdu.MaxShortData {
		opts.ChainSize = apdu.MaxShortData
	}
	return &Client{t: t, opts: opts}
}

// Transport returns the client's transport.
func (c *Client) Transport() Transport { return c.t }

// Do sends cmd and returns its complete response:
//   - data over 255 bytes goes in a chain of short APDUs (CLA bit 10), or
//     as an extended APDU with ClientOptions.Extended;
//   - 61xx is followed by GET RESPONSE until the data is complete;
//   - 6Cxx makes it send the command again with Le = xx;
//   - a final 9000 or 91xx is success; 91xx sets Response.Notification.
//
// Any other final status word is returned as an *apdu.Error (named after op,
// when given) that matches the apdu package's sentinel errors with
// errors.Is, together with the Response.
func (c *Client) Do(ctx context.Context, op string, cmd apdu.Command) (Response, error) {
	parts := []apdu.Command{cmd}
	if !c.opts.Extended && len(cmd.Data) > c.opts.ChainSize {
		parts = cmd.Chain(c.opts.ChainSize)
	}
	for _, p := range parts[:len(parts)-1] {
		r, err := c.raw(ctx, p)
		if err != nil {
			return Response{}, err
		}
		if r.SW != apdu.SWSuccess {
			return Response{SW: r.SW}, &apdu.Error{SW: r.SW, Op: op}
		}
	}
	last := parts[len(parts)-1]
	r, err := c.raw(ctx, last)
	if err != nil {
		return Response{}, err
	}
	if n, ok := r.SW.WrongLe(); ok {
		last.Ne = n
		if r, err = c.raw(ctx, last); err != nil {
			return Response{}, err
		}
	}
	data := r.Data
	channel := int(cmd.CLA & 0x03)
	for i := 0; ; i++ {
		n, more := r.SW.MoreData()
		if !more {
			break
		}
		if i == maxGetResponses {
			return Response{}, fmt.Errorf("hostlib: %s: the card keeps answering 61xx", op)
		}
		get := cardproto.GetResponse(n)
		get.CLA = apdu.WithChannel(get.CLA, channel)
		if r, err = c.raw(ctx, get); err != nil {
			return Response{}, err
		}
		data = append(data, r.Data...)
	}
	resp := Response{Data: data, SW: r.SW}
	if n, ok := r.SW.Notification(); ok {
		resp.Notification = n
	}
	if !r.SW.OK() {
		return resp, &apdu.Error{SW: r.SW, Op: op}
	}
	return resp, nil
}

// raw sends one APDU as it is.
func (c *Client) raw(ctx context.Context, cmd apdu.Command) (apdu.Response, error) {
	b, err := cmd.Bytes()
	if err != nil {
		return apdu.Response{}, fmt.Errorf("hostlib: %w", err)
	}
	out, err := c.t.Transmit(ctx, b)
	if err != nil {
		return apdu.Response{}, err
	}
	r, err := apdu.ParseResponse(out)
	if err != nil {
		return apdu.Response{}, fmt.Errorf("hostlib: card answer %X: %w", out, err)
	}
	return r, nil
}
