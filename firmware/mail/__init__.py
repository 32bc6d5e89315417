"""The mail stack: smtpd -> queue -> qmgr -> route -> deliver -> bounce."""
