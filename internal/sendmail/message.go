package sendmail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
)

// MaxHeader bounds the header section read into memory (the body is
// streamed). A header larger than this is a data error, not a reason to
// hold an unbounded amount of a script's output.
const MaxHeader = 1 << 20

// ErrRead marks a failure to read standard input.
var ErrRead = errors.New("reading the message failed")

// DataError is a message that cannot be sent as it is: exit EX_DATAERR.
type DataError struct{ msg string }

func (e *DataError) Error() string { return e.msg }

// Message is a message read from standard input: its header section
// (already rewritten: Bcc removed, From added when missing) and the rest,
// still unread.
type Message struct {
	header []byte
	rest   io.Reader
	// Recipients are the addresses of To:, Cc: and Bcc:, in that order of
	// appearance, when -t asked for them.
	Recipients []string
}

// Reader returns the message as it is submitted.
func (m *Message) Reader() io.Reader {
	return io.MultiReader(bytes.NewReader(m.header), m.rest)
}

// ReadOptions say how to read and rewrite the message.
type ReadOptions struct {
	FromHeaders bool   // -t: collect To/Cc/Bcc recipients
	IgnoreDots  bool   // -i: a lone "." line is message text, not the end
	Sender      string // for an added From: header
	FullName    string // its display name
}

// ReadMessage reads the header section of r and returns the message ready
// to submit. Bcc: headers are always removed (they name recipients that
// the other recipients must not see). A From: header is added when the
// message has none, as sendmail does; the daemon adds Date and Message-ID.
func ReadMessage(r io.Reader, opt ReadOptions) (*Message, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var src io.Reader = br
	if !opt.IgnoreDots {
		src = &dotReader{r: br}
	}
	lr := bufio.NewReaderSize(src, 64<<10)

	var (
		fields  []field // the header, unfolded, in order
		size    int
		pending []byte // the first line after the header: blank, or body text
	)
	for pending == nil {
		line, err := lr.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A "header" line over 64 KiB: the input has no header section.
			pending = append([]byte(nil), line...)
			break
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%w: %w", ErrRead, err)
		}
		size += len(line)
		if size > MaxHeader {
			return nil, &DataError{fmt.Sprintf("the header section is over %d bytes; is the blank line after the headers missing?", MaxHeader)}
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			// end of input
		case len(trimmed) == 0:
			pending = append([]byte(nil), line...)
		case (line[0] == ' ' || line[0] == '\t') && len(fields) > 0:
			f := &fields[len(fields)-1]
			f.raw = append(f.raw, line...)
			f.value += " " + strings.TrimSpace(string(trimmed))
		default:
			name, value, ok := strings.Cut(string(trimmed), ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				pending = append([]byte(nil), line...) // not a header: body text starts here
				break
			}
			fields = append(fields, field{name: name, value: strings.TrimSpace(value), raw: append([]byte(nil), line...)})
		}
		if err == io.EOF {
			break
		}
	}

	m := &Message{}
	var out bytes.Buffer
	hasFrom := false
	for _, f := range fields {
		lname := strings.ToLower(f.name)
		switch lname {
		case "from":
			hasFrom = true
		case "to", "cc", "bcc":
			if opt.FromHeaders {
				addrs, err := addresses(f)
				if err != nil {
					return nil, err
				}
				m.Recipients = append(m.Recipients, addrs...)
			}
		}
		if lname == "bcc" || lname == "resent-bcc" {
			continue
		}
		out.Write(f.raw)
		if !bytes.HasSuffix(f.raw, []byte("\n")) {
			out.WriteString("\r\n") // the input ended inside this header
		}
	}
	if !hasFrom && opt.Sender != "" {
		from := opt.Sender
		if opt.FullName != "" {
			from = (&mail.Address{Name: opt.FullName, Address: opt.Sender}).String()
		}
		out.WriteString("From: " + from + "\r\n")
	}
	// The blank line that ends the header: the input's own, or one added
	// when the input ended in the header or had no header at all.
	if len(bytes.TrimRight(pending, "\r\n")) != 0 || pending == nil {
		out.WriteString("\r\n")
	}
	out.Write(pending)
	m.header = out.Bytes()
	m.rest = lr
	return m, nil
}

type field struct {
	name  string
	value string // unfolded
	raw   []byte // as read, continuation lines included
}

// addresses parses a To/Cc/Bcc header. An empty header or a group with no
// members ("undisclosed-recipients:;") names nobody.
func addresses(f field) ([]string, error) {
	if strings.TrimSpace(f.value) == "" {
		return nil, nil
	}
	list, err := mail.ParseAddressList(f.value)
	if err != nil {
		if strings.HasSuffix(strings.TrimSpace(f.value), ":;") {
			return nil, nil
		}
		return nil, &DataError{fmt.Sprintf("%s: header %q: %v", f.name, f.value, err)}
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out, nil
}

// dotReader ends the input at a line holding a single "." (sendmail's
// traditional end of message without -i); what follows is not read.
type dotReader struct {
	r       *bufio.Reader
	buf     []byte // the rest of the current line, handed out next
	midLine bool   // the last line read did not end in a newline yet
	err     error  // returned once buf is empty
}

func (d *dotReader) Read(p []byte) (int, error) {
	if len(d.buf) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		line, err := d.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			err = nil
		}
		if !d.midLine && isDotLine(line) {
			d.err = io.EOF
			return 0, io.EOF
		}
		d.midLine = len(line) == 0 || line[len(line)-1] != '\n'
		d.buf, d.err = line, err // line stays valid: ReadSlice runs again only once it is used up
		if len(line) == 0 {
			return 0, err
		}
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func isDotLine(line []byte) bool {
	s := string(line)
	return s == ".\n" || s == ".\r\n" || s == "."
}
