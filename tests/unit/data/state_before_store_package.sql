BEGIN TRANSACTION;
CREATE TABLE batch_batches (
	name VARCHAR(64) NOT NULL, 
	source VARCHAR(64) NOT NULL, 
	target VARCHAR(64) NOT NULL, 
	options TEXT NOT NULL, 
	every FLOAT, 
	stop_requested BOOLEAN NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (name), 
	FOREIGN KEY(source) REFERENCES batch_endpoints (name), 
	FOREIGN KEY(target) REFERENCES batch_endpoints (name)
);
INSERT INTO "batch_batches" VALUES('b1','old','new','{"before": null, "include_deleted": false, "labels": "once", "neutralise_read_receipts": false, "since": null}',NULL,0,1.79650052663542604452e+09);
CREATE TABLE batch_endpoints (
	name VARCHAR(64) NOT NULL, 
	host TEXT NOT NULL, 
	port INTEGER NOT NULL, 
	security VARCHAR(16) NOT NULL, 
	auth_user TEXT, 
	auth_secret TEXT, 
	max_connections INTEGER NOT NULL, 
	ca_file TEXT, 
	insecure BOOLEAN NOT NULL, 
	created FLOAT NOT NULL, 
	auth VARCHAR(16), 
	oauth TEXT, 
	profile VARCHAR(16), 
	PRIMARY KEY (name)
);
INSERT INTO "batch_endpoints" VALUES('old','127.0.0.1',10143,'none',NULL,NULL,10,NULL,0,1.79650052662879824638e+09,'auto',NULL,'auto');
INSERT INTO "batch_endpoints" VALUES('new','mail.new.example',993,'ssl',NULL,NULL,10,NULL,0,1.79650052663220667842e+09,'auto',NULL,'auto');
CREATE TABLE batch_failures (
	id INTEGER NOT NULL, 
	batch VARCHAR(64) NOT NULL, 
	email TEXT NOT NULL, 
	folder TEXT NOT NULL, 
	uid BIGINT, 
	reason TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(batch) REFERENCES batch_batches (name) ON DELETE CASCADE
);
CREATE TABLE batch_mailboxes (
	batch VARCHAR(64) NOT NULL, 
	email TEXT NOT NULL, 
	line INTEGER NOT NULL, 
	source_user TEXT NOT NULL, 
	source_secret TEXT, 
	target_user TEXT NOT NULL, 
	target_secret TEXT, 
	include TEXT NOT NULL, 
	exclude TEXT NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	pending VARCHAR(16), 
	reason TEXT, 
	owner TEXT, 
	heartbeat FLOAT, 
	folders INTEGER NOT NULL, 
	copied BIGINT NOT NULL, 
	bytes BIGINT NOT NULL, 
	existing BIGINT NOT NULL, 
	skipped BIGINT NOT NULL, 
	errors INTEGER NOT NULL, 
	planned BIGINT NOT NULL, 
	planned_bytes BIGINT NOT NULL, 
	done BIGINT NOT NULL, 
	done_bytes BIGINT NOT NULL, 
	seconds FLOAT NOT NULL, 
	started FLOAT, 
	finished FLOAT, 
	last_synced FLOAT, 
	PRIMARY KEY (batch, email), 
	FOREIGN KEY(batch) REFERENCES batch_batches (name) ON DELETE CASCADE
);
INSERT INTO "batch_mailboxes" VALUES('b1','ann@new.example',2,'ann',NULL,'ann@new.example',NULL,'[]','[]','created',NULL,NULL,NULL,NULL,0,0,0,0,0,0,0,0,0,0,0.0,NULL,NULL,NULL);
CREATE TABLE batch_runs (
	id INTEGER NOT NULL, 
	batch VARCHAR(64) NOT NULL, 
	email TEXT NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	started FLOAT NOT NULL, 
	finished FLOAT NOT NULL, 
	outcome VARCHAR(16) NOT NULL, 
	summary TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(batch) REFERENCES batch_batches (name) ON DELETE CASCADE
);
CREATE TABLE batch_services (
	owner TEXT NOT NULL, 
	heartbeat FLOAT NOT NULL, 
	PRIMARY KEY (owner)
);
CREATE TABLE checkpoints (
	pair TEXT NOT NULL, 
	folder TEXT NOT NULL, 
	target_folder TEXT NOT NULL, 
	source_uidvalidity BIGINT NOT NULL, 
	source_uidnext BIGINT NOT NULL, 
	source_modseq BIGINT, 
	target_uidvalidity BIGINT NOT NULL, 
	selection TEXT NOT NULL, 
	PRIMARY KEY (pair, folder)
);
INSERT INTO "checkpoints" VALUES('imap://ann@127.0.0.1:10143 -> imaps://ann@new.example@mail.new.example:993','INBOX','INBOX',1,3,NULL,7,'all');
CREATE TABLE copied (
	pair TEXT NOT NULL, 
	folder TEXT NOT NULL, 
	source_uid BIGINT NOT NULL, 
	target_uid BIGINT, 
	flags TEXT NOT NULL, 
	label TEXT, 
	elsewhere INTEGER DEFAULT '0' NOT NULL, 
	PRIMARY KEY (pair, folder, source_uid)
);
INSERT INTO "copied" VALUES('imap://ann@127.0.0.1:10143 -> imaps://ann@new.example@mail.new.example:993','INBOX',1,11,'\Seen',NULL,0);
INSERT INTO "copied" VALUES('imap://ann@127.0.0.1:10143 -> imaps://ann@new.example@mail.new.example:993','INBOX',2,12,'',NULL,0);
INSERT INTO "copied" VALUES('imap://ann@127.0.0.1:10143 -> imaps://ann@new.example@mail.new.example:993','Work',5,15,'','k1',0);
CREATE TABLE failures (
	pair TEXT NOT NULL, 
	folder TEXT NOT NULL, 
	source_uid BIGINT NOT NULL, 
	reason TEXT NOT NULL, 
	PRIMARY KEY (pair, folder, source_uid)
);
INSERT INTO "failures" VALUES('imap://ann@127.0.0.1:10143 -> imaps://ann@new.example@mail.new.example:993','Work',6,'too big');
CREATE TABLE intents (
	pair TEXT NOT NULL, 
	folder TEXT NOT NULL, 
	source_uid BIGINT NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	size BIGINT NOT NULL, 
	flags TEXT NOT NULL, 
	target_folder TEXT NOT NULL, 
	target_uidvalidity BIGINT NOT NULL, 
	target_uidnext BIGINT NOT NULL, 
	message_id TEXT, 
	internaldate BIGINT, 
	label TEXT, 
	PRIMARY KEY (pair, folder, source_uid)
);
CREATE TABLE meta (
	application VARCHAR(40) NOT NULL, 
	schema_version INTEGER NOT NULL, 
	PRIMARY KEY (application)
);
INSERT INTO "meta" VALUES('mailferry',2);
INSERT INTO "meta" VALUES('mailferry.batches',1);
INSERT INTO "meta" VALUES('mailferry.web',1);
CREATE TABLE web_admin (
	id INTEGER NOT NULL, 
	password_hash TEXT NOT NULL, 
	changed FLOAT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "web_admin" VALUES(1,'scrypt$1024$8$1$Nhfwsgj6_A7yjYTXCVi_rw$-nXgq8lmJ-G5zpP_j4DHPHhccmubeTgONTbBnTjV5UI',1700000000.0);
CREATE TABLE web_sessions (
	digest VARCHAR(64) NOT NULL, 
	csrf VARCHAR(64) NOT NULL, 
	created FLOAT NOT NULL, 
	expires FLOAT NOT NULL, 
	last_seen FLOAT, 
	PRIMARY KEY (digest)
);
CREATE TABLE web_tokens (
	name VARCHAR(64) NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	created FLOAT NOT NULL, 
	last_used FLOAT, 
	expires FLOAT, 
	PRIMARY KEY (name), 
	UNIQUE (digest)
);
INSERT INTO "web_tokens" VALUES('ci','e92a81731303850a32144e5bb9235c90be10c2895fddeeb02f9953be8f231e08',1700000000.0,NULL,NULL);
CREATE INDEX copied_label ON copied (pair, label);
COMMIT;
