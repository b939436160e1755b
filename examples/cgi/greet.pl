#!/usr/bin/perl
# Asks for a name (status 10) and greets whoever answers, by name and,
# when they present a client certificate, by its common name too.
# It answers in the CGI header-block shape ("Status: ..." then a blank
# line), which xitzin turns into a Gemini header.
use strict;
use warnings;

my $query = $ENV{QUERY_STRING} // '';
if ($query eq '') {
	print "Status: 10 What is your name?\r\n\r\n";
	exit 0;
}
(my $name = $query) =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
print "Status: 20 text/gemini; charset=utf-8\r\n\r\n";
print "# Hello, $name!\n\n";
if (($ENV{TLS_CLIENT_AUTHORISED} // '0') eq '1') {
	my $cn = $ENV{REMOTE_USER} // '(no common name)';
	print "Your certificate says $cn ($ENV{TLS_CLIENT_HASH}).\n";
} else {
	print "No client certificate.\n";
}
