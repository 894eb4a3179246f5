package applet

import (
	"bytes"
	"errors"
	"github.com/simtix/simtix/cardproto"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/nvm"
)

// Card runtime: class and channel checks, dispatch with the spec's status
// word precedence, command chaining, response parts and GET RESPONSE, the
// T=0 rule and the 91xx notification status.

// MaxCommandData is the most command data the card takes, chained or not.
const MaxCommandData = 1024

const channels = 4

// volatile is one interface's state that a power cycle clears.
type volatile struct {
	ch      [channels]channel
	profile bool // TERMINAL PROFILE received since power-on
}

type channel struct {
	open     bool // channels 1-3; the basic channel is always open
	selected bool // the applet is selected on this channel
	chain    *chain
	resp     []byte // the rest of the last response
	hasResp  bool
	noNotify bool // the pending response is FETCH's: its final status stays 9000
}

type chain struct {
	ins, p1, p2 byte
	data        []byte
}

type dataRule int

const (
	noData dataRule = iota
	needData
)

// call is one command being run.
type call struct {
	iface Interface
	ch    int
	v     *volatile
	p1    byte
	p2    byte
	data  []byte
}

type command struct {
	name       string
	iso        bool // class 0x (ISO/IEC 7816-4) rather than 8x (the card's own)
	applet     bool // needs the applet selected on the channel
	contact    bool
	contactles bool
	params     func(p1, p2 byte) bool
	data       dataRule
	run        func(c *Card, x *call) ([]byte, error)
}

func p1p2Zero(p1, p2 byte) bool { return p1 == 0 && p2 == 0 }

// commands is the card's instruction table.
var commands = map[byte]*command{
	cardproto.InsSelect: {name: "SELECT", iso: true, contact: true, contactles: true, data: needData,
		params: func(p1, p2 byte) bool { return p1 == 0x04 && (p2 == 0x00 || p2 == 0x04 || p2 == 0x0C) },
		run:    (*Card).selectApplet},
	cardproto.InsManageChannel: {name: "MANAGE CHANNEL", iso: true, contact: true, contactles: true, data: noData,
		params: func(p1, p2 byte) bool { return p1 == 0 && p2 == 0 || p1 == 0x80 && p2 >= 1 && p2 <= 3 },
		run:    (*Card).manageChannel},
	cardproto.InsGetResponse: {name: "GET RESPONSE", iso: true, contact: true, contactles: true, data: noData, params: p1p2Zero},
	cardproto.InsStatus: {name: "STATUS", contact: true, data: noData,
		params: func(p1, p2 byte) bool { return p1 <= 0x02 && (p2 == 0x00 || p2 == 0x01 || p2 == 0x0C) },
		run:    (*Card).status},
	cardproto.InsTerminalProfile:  {name: "TERMINAL PROFILE", contact: true, data: needData, params: p1p2Zero, run: (*Card).terminalProfile},
	cardproto.InsFetch:            {name: "FETCH", contact: true, data: noData, params: p1p2Zero, run: (*Card).fetch},
	cardproto.InsTerminalResponse: {name: "TERMINAL RESPONSE", contact: true, data: needData, params: p1p2Zero, run: (*Card).terminalResponse},
	cardproto.InsList:             {name: "LIST", applet: true, contact: true, data: noData, params: p1p2Zero, run: (*Card).list},
	cardproto.InsRead:             {name: "READ", applet: true, contact: true, data: needData, params: p1p2Zero, run: (*Card).read},
	cardproto.InsFind:             {name: "FIND", applet: true, contactles: true, data: needData, params: p1p2Zero, run: (*Card).find},
	cardproto.InsCheck:            {name: "CHECK", applet: true, contactles: true, data: needData, params: p1p2Zero, run: (*Card).check},
	cardproto.InsStore:            {name: "STORE", applet: true, contact: true, data: needData, params: p1p2Zero, run: (*Card).store},
	cardproto.InsDelete:           {name: "DELETE", applet: true, contact: true, data: needData, params: p1p2Zero, run: (*Card).delete},
	cardproto.InsBeginSync:        {name: "BEGIN SYNC", applet: true, contact: true, data: needData, params: p1p2Zero, run: (*Card).beginSync},
	cardproto.InsPutCertificate:   {name: "PUT CERTIFICATE", applet: true, contact: true, data: needData, params: p1p2Zero, run: (*Card).putCertificate},
}

func (d *command) allowedOn(i Interface) bool {
	if i == Contactless {
		return d.contactles
	}
	return d.contact
}

// process runs one APDU: the checks in the order of card-applet.md's status
// word precedence, then the command.
func (c *Card) process(i Interface, raw []byte) ([]byte, apdu.StatusWord, error) {
	v := &c.iface[i]
	if len(raw) < 4 {
		return nil, apdu.SWWrongLength, nil
	}
	cla, ins, p1, p2 := raw[0], raw[1], raw[2], raw[3]
	def := commands[ins]

	// 6E00: the class.
	cls, err := apdu.ParseClass(cla)
	if err != nil || cls.SecureMessaging != 0 ||
		def != nil && def.iso == (cls.Kind == apdu.KindProprietary) {
		return nil, apdu.SWCLANotSupported, nil
	}
	// 6881: the logical channel.
	if cls.Kind == apdu.KindFurtherInterindustry {
		return nil, apdu.SWChannelNotSupported, nil
	}
	ch := &v.ch[cls.Channel]
	if cls.Channel > 0 && !ch.open {
		return nil, apdu.SWChannelNotSupported, nil
	}
	// From here the command belongs to the channel: it ends any pending
	// chain (unless it continues it) and, but for GET RESPONSE, any pending
	// response.
	pending := ch.chain
	ch.chain = nil
	if ins != cardproto.InsGetResponse {
		ch.resp, ch.hasResp, ch.noNotify = nil, false, false
	}
	switch {
	case def == nil:
		return nil, apdu.SWINSNotSupported, nil
	case def.applet && !ch.selected:
		return nil, apdu.SWNotSelected, nil
	case !def.allowedOn(i):
		return nil, apdu.SWSecurityStatus, nil
	case !def.params(p1, p2):
		return nil, apdu.SWIncorrectP1P2, nil
	}
	// 6700: the APDU's coding.
	cmd, err := apdu.ParseCommand(raw)
	if err != nil || cmd.Extended && c.t0 && i == Contact ||
		def.data == noData && (len(cmd.Data) > 0 || cls.Chaining) ||
		def.data == needData && len(cmd.Data) == 0 ||
		ins == cardproto.InsTerminalProfile && len(cmd.Data) > 32 {
		return nil, apdu.SWWrongLength, nil
	}
	// 6883 and chaining.
	data := cmd.Data
	if pending != nil {
		same := pending.ins == ins && pending.p1 == p1 && pending.p2 == p2
		switch {
		case same:
			data = append(pending.data, cmd.Data...)
		case cls.Chaining:
			return nil, apdu.SWLastCommandExpected, nil
		}
	}
	if len(data) > MaxCommandData || ins == cardproto.InsTerminalProfile && len(data) > 32 {
		return nil, apdu.SWWrongLength, nil
	}
	if cls.Chaining {
		ch.chain = &chain{ins: ins, p1: p1, p2: p2, data: bytes.Clone(data)}
		return nil, apdu.SWSuccess, nil
	}

	ne := cmd.Ne
	if ne == 0 {
		ne = apdu.MaxShortNe
		if cmd.Extended {
			ne = apdu.MaxExtendedNe
		}
	}
	if ins == cardproto.InsGetResponse {
		return c.getResponse(i, v, ch, ne)
	}
	out, err := def.run(c, &call{iface: i, ch: cls.Channel, v: v, p1: p1, p2: p2, data: data})
	if err != nil {
		var sw swError
		switch {
		case errors.As(err, &sw):
			return nil, apdu.StatusWord(sw), nil
		case errors.Is(err, nvm.ErrPowerLost):
			return nil, 0, err
		default:
			return nil, apdu.SWUnknown, nil
		}
	}
	// The response, whole or in parts.
	t0 := c.t0 && i == Contact && len(data) > 0 && len(out) > 0
	if t0 || len(out) > ne {
		first := ne
		if t0 {
			first = 0
		}
		ch.resp, ch.hasResp, ch.noNotify = out[first:], true, ins == cardproto.InsFetch
		return out[:first], apdu.MoreDataStatus(len(ch.resp)), nil
	}
	return out, c.final(i, v, ins == cardproto.InsFetch), nil
}

// getResponse gives the next part of the channel's pending response.
func (c *Card) getResponse(i Interface, v *volatile, ch *channel, ne int) ([]byte, apdu.StatusWord, error) {
	if !ch.hasResp {
		return nil, apdu.SWConditionsNotSatisfied, nil
	}
	n := min(len(ch.resp), ne)
	out := ch.resp[:n]
	ch.resp = ch.resp[n:]
	if len(ch.resp) > 0 {
		return out, apdu.MoreDataStatus(len(ch.resp)), nil
	}
	noNotify := ch.noNotify
	ch.resp, ch.hasResp, ch.noNotify = nil, false, false
	return out, c.final(i, v, noNotify), nil
}

// final is the status of a successful command's last response part: 9000,
// or 91xx on the contact interface once TERMINAL PROFILE was sent and a
// notification is pending.
func (c *Card) final(i Interface, v *volatile, noNotify bool) apdu.StatusWord {
	if i == Contact && v.profile && c.s.notify.pending != 0 && !noNotify {
		return apdu.NotificationStatus(len(c.notification()))
	}
	return apdu.SWSuccess
}

// selectApplet is SELECT by AID.
func (c *Card) selectApplet(x *call) ([]byte, error) {
	if !bytes.Equal(x.data, cardproto.AID) {
		return nil, swError(apdu.SWFileNotFound)
	}
	x.v.ch[x.ch].selected = true
	if x.p2 == 0x0C {
		return nil, nil
	}
	return c.fci(x.iface), nil
}

// manageChannel opens the lowest closed channel, or closes channel P2.
func (c *Card) manageChannel(x *call) ([]byte, error) {
	if x.p1 == 0x80 {
		n := int(x.p2)
		if !x.v.ch[n].open {
			return nil, swError(apdu.SWChannelNotSupported)
		}
		x.v.ch[n] = channel{}
		return nil, nil
	}
	for n := 1; n < channels; n++ {
		if !x.v.ch[n].open {
			x.v.ch[n] = channel{open: true}
			return []byte{byte(n)}, nil
		}
	}
	return nil, swError(apdu.SWChannelNotSupported)
}

// status answers the status template when the applet is selected.
func (c *Card) status(x *call) ([]byte, error) {
	if x.p2 == 0x0C || !x.v.ch[x.ch].selected {
		return nil, nil
	}
	return c.statusTemplate(), nil
}

func (c *Card) terminalProfile(x *call) ([]byte, error) {
	x.v.profile = true
	return nil, nil
}
