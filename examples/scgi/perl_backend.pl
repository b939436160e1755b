#!/usr/bin/perl
# An SCGI backend in Perl, on a Unix socket, with Debian's libscgi-perl
# (`use SCGI;`), whose parser is strict: it refuses a request whose
# CONTENT_LENGTH is not first or that carries an empty value, so it also
# shows that xitzin's requests keep the rules.
#
#     perl perl_backend.pl /tmp/myapp.sock
#
# and in xitzin.conf:
#
#     [scgi /app]
#     socket = /tmp/myapp.sock
#
# It prints "perl_backend: listening on PATH" once ready; SIGTERM stops it.
use strict;
use warnings;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use SCGI;

my $path = shift @ARGV or die "usage: perl_backend.pl SOCKET_PATH\n";
unlink $path;
my $socket = IO::Socket::UNIX->new(
    Type   => SOCK_STREAM,
    Local  => $path,
    Listen => 64,
) or die "perl_backend: $path: $!\n";
$SIG{TERM} = sub { unlink $path; exit 0 };
$| = 1;
print "perl_backend: listening on $path\n";

my $scgi = SCGI->new($socket, blocking => 1);
while (my $request = $scgi->accept) {
    my $ok = eval { $request->read_env; 1 };
    if (!$ok) {
        # A request SCGI.pm calls malformed: say why, answer nothing.
        warn "perl_backend: $@";
        $request->close;
        next;
    }
    my $env = $request->env;
    my $path_info = $env->{PATH_INFO} // "";
    my $query = $env->{QUERY_STRING} // "";
    my $user = $env->{REMOTE_USER} // "anonymous";
    my $conn = $request->connection;
    print {$conn} "20 text/gemini\r\n",
        "# Hello from Perl\n\n",
        "Path: $path_info\n",
        "Query: $query\n",
        "Mount: ", $env->{SCRIPT_NAME} // "", "\n",
        "User: $user\n",
        "Variables: ", scalar(keys %$env), "\n";
    $request->close;
}
