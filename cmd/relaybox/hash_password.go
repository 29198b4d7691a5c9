package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// hashCost is bcrypt's work factor for [[auth.users]]. 10 keeps one AUTH
// on a Pi Zero well under a second; every step up doubles it.
const hashCost = 10

// cmdHashPassword prints the bcrypt hash of a password read from stdin,
// for [[auth.users]] password_hash. On a terminal it prompts on stderr,
// does not echo, and asks twice; from a pipe it reads one line.
func cmdHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("hash-password", stderr)
	if words, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(words) > 0 {
		return usageError{errors.New("takes no arguments: the password is read from stdin, never from the command line (it would show in ps and the shell history)")}
	}
	var pass string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p1, err := promptSecret(f, stderr, "Password: ")
		if err != nil {
			return err
		}
		p2, err := promptSecret(f, stderr, "Again: ")
		if err != nil {
			return err
		}
		if p1 != p2 {
			return usageError{errors.New("the two passwords differ; nothing was printed, run it again")}
		}
		pass = p1
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading the password: %w", err)
		}
		pass = strings.TrimRight(line, "\r\n")
	}
	if pass == "" {
		return usageError{errors.New("empty password: type one (or pipe one line into stdin)")}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), hashCost)
	if err != nil {
		return usageError{fmt.Errorf("hash: %w", err)} // over 72 bytes
	}
	fmt.Fprintln(stdout, string(hash))
	return nil
}

func promptSecret(f *os.File, stderr io.Writer, prompt string) (string, error) {
	fmt.Fprint(stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return string(b), nil
}
