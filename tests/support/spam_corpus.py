"""Ham and spam messages made up on the spot, the same for the same seed:
office mail (meetings, invoices, projects, colleagues' notes, a supplier's
newsletter) and several spam families (pharmacy, prize and advance-fee,
phishing, investment, replicas, SEO). Written for the tests: small, fast and
varied enough that a filter has to learn words, not templates; no real
person's mail is in it."""

from __future__ import annotations

import datetime
import random
from email.utils import format_datetime

FIRST = ["anna", "ben", "carla", "david", "eva", "frank", "grace", "hugo", "ines", "jonas",
         "karin", "lukas", "maria", "nils", "olga", "peter", "rita", "stefan", "tina", "uwe"]
LAST = ["meyer", "schmidt", "novak", "rossi", "jensen", "dubois", "garcia", "kowalski", "smith",
        "berg", "larsen", "costa"]
OFFICE_DOMAINS = ["example.com", "partner-office.test", "supplier.test", "accounting.test"]
SPAM_DOMAINS = ["bestdeal-pharm.test", "win-prize.test", "secure-verify.test", "crypto-gain.test",
                "luxury-replica.test", "top-rank-seo.test", "mega-offer.test", "xq7zk.test"]

HAM = {
    "meeting": {
        "subjects": ["Meeting on {day}", "Agenda for the {topic} review", "Moving our call to {day}",
                     "Room booked for {day} at {time}", "Notes from the {topic} meeting"],
        "lines": ["Could we meet on {day} at {time} to go through the {topic} plan?",
                  "I booked the small meeting room on the second floor.",
                  "Please bring the latest figures for {topic}.",
                  "The agenda: status of {topic}, open questions, next steps.",
                  "If {day} does not suit you, suggest another time.",
                  "I attached the minutes of last week so everyone can prepare.",
                  "{name} will join us by phone from the {city} office.",
                  "We should decide who takes over the {topic} tasks while {name} is away."],
    },
    "invoice": {
        "subjects": ["Invoice {num} for {month}", "Payment reminder: invoice {num}",
                     "Your order {num} has shipped", "Quote for the {topic} work",
                     "Credit note {num}"],
        "lines": ["Please find attached our invoice {num} for the services in {month}.",
                  "The amount is due within thirty days of the invoice date.",
                  "Your order of toner cartridges and paper was shipped today.",
                  "Our bank details have not changed; please quote the invoice number.",
                  "As discussed, the quote covers installation and two days of support.",
                  "Delivery to your warehouse is planned for {day}.",
                  "Thank you for your order and kind regards from accounting.",
                  "The credit note corrects the duplicate line on the last invoice."],
    },
    "project": {
        "subjects": ["Status of the {topic} project", "{topic}: draft for review",
                     "Question about the {topic} schedule", "Re: {topic} test results",
                     "Handover of the {topic} documents"],
        "lines": ["The draft of the {topic} report is in the shared folder for your review.",
                  "We finished the tests; two issues remain open and are assigned to {name}.",
                  "The customer asked whether the schedule for {topic} can move by a week.",
                  "I updated the spreadsheet with the hours booked this month.",
                  "Could you check the figures in section three before Friday?",
                  "The supplier confirmed the parts arrive on {day}.",
                  "Let me know if the new layout works for the printing team.",
                  "I have added comments to the contract draft, mostly small wording changes."],
    },
    "colleague": {
        "subjects": ["Lunch on {day}?", "Thanks for yesterday", "Holiday plans",
                     "Parking next week", "Birthday card for {name}"],
        "lines": ["Shall we try the new place around the corner for lunch on {day}?",
                  "Thanks again for helping with the move yesterday.",
                  "I am away from {day} for a week; {name} covers my phone.",
                  "The car park is closed on {day} for repairs, so come by train.",
                  "We are collecting for a birthday card for {name}; it is in my drawer.",
                  "The coffee machine on the third floor is fixed at last.",
                  "Did you see the photos from the summer party?",
                  "My train was late again, I will be in at half past nine."],
    },
    "newsletter": {
        "subjects": ["Supplier news for {month}", "New opening hours of our shop",
                     "Training dates in {month}", "Product update: {topic}"],
        "lines": ["Our warehouse has new opening hours from {month} on.",
                  "We offer training on the {topic} software on two dates in {month}.",
                  "The new catalogue with office furniture is online.",
                  "Customers with a framework contract keep their prices this year.",
                  "You receive this newsletter as a customer of our office supply shop.",
                  "Contact your account manager {name} for questions about deliveries."],
        "html": True,
    },
}

SPAM = {
    "pharmacy": {
        "subjects": ["Cheap meds without prescription", "V1agra {pct}% off today only",
                     "Your pharmacy order discount", "Best pills online, discreet shipping",
                     "Enhance your performance tonight"],
        "lines": ["Buy viagra and cialis online at the lowest prices, no prescription needed.",
                  "Discreet worldwide shipping, {pct}% discount on your first order.",
                  "Our certified online pharmacy ships pills in unmarked packages.",
                  "Click here to order now and save big on generic meds.",
                  "Limited time offer: free pills with every order over fifty dollars.",
                  "Satisfaction guaranteed or your money back, order today."],
    },
    "prize": {
        "subjects": ["Congratulations, you have won {money}", "Claim your prize now",
                     "Final notice: unclaimed lottery winnings", "URGENT business proposal",
                     "You are our lucky winner"],
        "lines": ["Your email address was selected in our international lottery draw.",
                  "You have won the sum of {money}; contact our claims agent immediately.",
                  "I am a barrister and I need a trusted partner to transfer {money}.",
                  "Send your full name, address and bank account to claim the funds.",
                  "This transaction is risk free and strictly confidential.",
                  "Reply urgently to receive your winning certificate."],
    },
    "phishing": {
        "subjects": ["Your account has been suspended", "Verify your mailbox now",
                     "Security alert: unusual sign-in activity", "Action required: update billing",
                     "Your password expires today"],
        "lines": ["We detected unusual activity and suspended your account.",
                  "Verify your identity within 24 hours or your mailbox will be closed.",
                  "Click the link below and log in to confirm your account details.",
                  "Update your billing information to avoid service interruption.",
                  "Failure to verify will result in permanent account deletion.",
                  "This is an automated security message, do not reply."],
        "html": True,
    },
    "investment": {
        "subjects": ["Make {money} a week from home", "This crypto coin will explode",
                     "Secret trading system revealed", "Double your bitcoin in 7 days",
                     "Financial freedom starts now"],
        "lines": ["Join thousands of investors earning {money} every week with bitcoin.",
                  "Our secret trading robot guarantees returns of {pct}% per month.",
                  "Invest now before the price explodes, only a few places left.",
                  "No experience needed, work from home and get rich fast.",
                  "Act now, this exclusive opportunity closes at midnight.",
                  "Deposit today and double your crypto in seven days guaranteed."],
        "html": True,
    },
    "replica": {
        "subjects": ["Luxury watches at {pct}% off", "Rolex replicas, best quality",
                     "Designer handbags for less", "Hot singles in your area",
                     "Exclusive outlet sale"],
        "lines": ["Swiss replica watches and designer handbags at unbeatable prices.",
                  "Best quality rolex replicas, free shipping worldwide.",
                  "Meet hot singles in your area tonight, sign up free.",
                  "Exclusive outlet sale, up to {pct}% off luxury brands.",
                  "Order now while stocks last, cheap luxury for everyone.",
                  "Unsubscribe anytime, we respect your privacy."],
    },
    "seo": {
        "subjects": ["Get your website on page one of Google", "SEO proposal for your site",
                     "Increase your traffic by {pct}%", "Guaranteed top ranking"],
        "lines": ["We can get your website to the first page of google search results.",
                  "Our SEO experts guarantee more traffic and more sales.",
                  "Increase your website traffic by {pct}% in just one month.",
                  "Reply with your budget and we send a free website audit.",
                  "Cheap backlinks and guaranteed top ranking for your keywords.",
                  "We noticed your site is not ranking well for your business."],
    },
}

TOPICS = ["budget", "website", "warehouse", "migration", "training", "audit", "printer",
          "network", "customer portal", "annual report", "logistics", "hiring"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
CITIES = ["Hamburg", "Vienna", "Zurich", "Lyon", "Milan", "Prague"]


class Corpus:
    def __init__(self, seed: int = 1):
        self.random = random.Random(seed)
        self.count = 0

    def _fill(self, text: str) -> str:
        r = self.random
        return text.format(day=r.choice(DAYS), time=f"{r.randint(8, 17)}:{r.choice(['00', '30'])}",
                           topic=r.choice(TOPICS), name=r.choice(FIRST).title(),
                           num=f"{r.randint(1000, 99999)}", month=r.choice(MONTHS),
                           city=r.choice(CITIES), pct=r.choice([50, 70, 80, 90, 300]),
                           money=f"${r.randint(2, 950)},{r.randint(100, 999)}")

    def _person(self, domains) -> tuple[str, str]:
        first, last = self.random.choice(FIRST), self.random.choice(LAST)
        return f"{first.title()} {last.title()}", f"{first}.{last}@{self.random.choice(domains)}"

    def _message(self, family: dict, sender: tuple[str, str], spam: bool) -> bytes:
        r = self.random
        self.count += 1
        subject = self._fill(r.choice(family["subjects"]))
        lines = [self._fill(line) for line in r.sample(family["lines"], r.randint(3, len(family["lines"])))]
        if spam and r.random() < 0.5:
            # Hash-buster filler: office words a spammer pastes in to look like mail.
            lines.insert(r.randrange(len(lines) + 1),
                         self._fill(r.choice(HAM[r.choice(sorted(HAM))]["lines"])))
        greeting = r.choice(["Hello", "Hi", "Dear colleague", "Good morning"] if not spam
                            else ["Dear friend", "Hello", "Dear customer", "Attention"])
        closing = (f"Best regards,\n{sender[0]}" if not spam
                   else r.choice(["Regards,\nThe team", "Best wishes", "Sincerely,\nCustomer service"]))
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + \
            datetime.timedelta(minutes=r.randint(0, 500_000))
        domain = sender[1].rpartition("@")[2]
        to_name, to_address = self._person(["example.com"])
        text = f"{greeting},\n\n" + "\n".join(lines) + f"\n\n{closing}\n"
        if spam:
            text += f"\nhttp://{r.choice(SPAM_DOMAINS)}/{r.randint(10, 99999)}\n"
        headers = [f"From: {sender[0]} <{sender[1]}>", f"To: {to_name} <{to_address}>",
                   f"Subject: {subject}", f"Date: {format_datetime(when)}",
                   f"Message-ID: <{self.count}.{r.randint(10**8, 10**9)}@{domain}>",
                   "MIME-Version: 1.0"]
        if family.get("html") and r.random() < 0.7:
            html = "<html><body>" + "".join(f"<p>{line}</p>" for line in text.split("\n") if line)
            html += "</body></html>"
            boundary = f"b{r.randint(10**6, 10**7)}"
            headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
            body = (f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
                    f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
                    f"--{boundary}--\r\n")
        else:
            headers.append("Content-Type: text/plain; charset=utf-8")
            body = text
        if r.random() < 0.5:
            headers.append(f"X-Mailer: {r.choice(['Outlook 16.0', 'Thunderbird 115', 'MailMate'])}"
                           if not spam else f"X-Mailer: {r.choice(['PHPMailer 5.2', 'Mass Sender 3'])}")
        return ("\r\n".join(headers) + "\r\n\r\n" + body.replace("\r\n", "\n").replace("\n", "\r\n")
                ).encode("utf-8")

    def ham(self) -> bytes:
        family = HAM[self.random.choice(sorted(HAM))]
        return self._message(family, self._person(OFFICE_DOMAINS), spam=False)

    def spam(self) -> bytes:
        name = self.random.choice(sorted(SPAM))
        sender = self._person(SPAM_DOMAINS) if self.random.random() < 0.7 else \
            self._person(["gmail-like.test", "mailbox.test"])
        return self._message(SPAM[name], sender, spam=True)

    def hams(self, count: int) -> list[bytes]:
        return [self.ham() for _ in range(count)]

    def spams(self, count: int) -> list[bytes]:
        return [self.spam() for _ in range(count)]
