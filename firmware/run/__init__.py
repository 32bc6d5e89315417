"""The box's processes, one module per job:

    start            `gatebox run`: the web admin, then the smtpd process
    smtpd            takes mail in (SMTP, submission), watches the settings
    qmgr             the queue manager child process, and how smtpd starts it
    softpak_services the SoftPaks' long-running services, reconciled on change
    web_admin        the web admin under gunicorn, and the environment it reads
    process          what every process does: logging, threads, signals
"""
