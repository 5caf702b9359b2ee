"""A generated CT series sent with dcmtk's storescu is stored bit for bit and indexed."""

import unittest

import pydicom

from harness import LOOPBACK, NODE_AE, SegnodeTestCase, port_open


class StoreBasicTest(SegnodeTestCase):

    def test_series_stored_and_indexed(self):
        node = self.node()
        ph = self.series(rows=64, cols=64, slices=20, patient_id="PAT-A-0042",
                         description="Integration basic", series_number=7, shuffle=True)
        proc = node.storescu(ph["files"], aet="MODALITY1")
        self.assertProcOk(proc, "storescu")

        # Exactly the generated SOP instances are indexed.
        self.assertEqual(self.stored_uids(node), sorted(ph["sop_instance_uids"]))
        rows = node.query("SELECT sop_instance_uid, sop_class_uid, transfer_syntax, path, "
                          "size_bytes, instance_number FROM instances")
        self.assertEqual(len(rows), 20)
        for row in rows:
            uid = row["sop_instance_uid"]
            expected_rel = f"instances/{ph['study_uid']}/{ph['series_uid']}/{uid}.dcm"
            self.assertEqual(row["path"], expected_rel)
            self.assertEqual(row["sop_class_uid"], "1.2.840.10008.5.1.4.1.1.2")
            self.assertEqual(row["transfer_syntax"], "1.2.840.10008.1.2.1")
            stored = node.workdir / expected_rel
            self.assertTrue(stored.is_file(), f"{stored} missing")
            self.assertEqual(row["size_bytes"], stored.stat().st_size)
            # Bit-preserving: the data set after the file meta group is the source's.
            self.assertSameDataset(stored, ph["by_uid"][uid])
            ds = pydicom.dcmread(stored)
            self.assertEqual(ds.SOPInstanceUID, uid)
            self.assertEqual(str(ds.file_meta.MediaStorageSOPInstanceUID), uid)
            self.assertEqual(str(ds.InstanceNumber), row["instance_number"])
            self.assertEqual(ds.pixel_array.shape, (64, 64))
        # Nothing else landed in the instance tree, tmp/ is empty, nothing quarantined.
        self.assertEqual(len(self.files_under(node.workdir / "instances")), 20)
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])
        self.assertEqual(self.files_under(node.workdir / "quarantine"), [])
        self.assertEqual(node.scalar("SELECT count(*) FROM quarantine"), 0)
        self.assertEqual(node.scalar("SELECT count(*) FROM receive_events"), 0)

        # The series row carries the data set's attributes and the sender.
        s = node.query_one("SELECT * FROM series WHERE series_uid = ?", (ph["series_uid"],))
        self.assertIsNotNone(s)
        self.assertEqual(node.scalar("SELECT count(*) FROM series"), 1)
        self.assertEqual(s["study_uid"], ph["study_uid"])
        self.assertEqual(s["patient_id"], "PAT-A-0042")
        self.assertEqual(s["modality"], "CT")
        self.assertEqual(s["description"], "Integration basic")
        self.assertEqual(s["series_number"], "7")
        self.assertEqual(s["frame_of_reference"], ph["frame_of_reference_uid"])
        self.assertEqual(s["calling_ae"], "MODALITY1")
        self.assertEqual(s["called_ae"], NODE_AE)
        self.assertEqual(s["peer_address"], LOOPBACK)
        self.assertEqual(s["instance_count"], 20)
        self.assertEqual(s["state"], "receiving")  # quiet period is 600 s here
        self.assertIsNone(s["completed_at"])
        self.assertLessEqual(s["first_received_at"], s["last_received_at"])

        # One released association from MODALITY1 with all 20 stored.
        node.wait_associations_ended()
        assoc = node.query("SELECT * FROM associations WHERE calling_ae = 'MODALITY1'")
        self.assertEqual(len(assoc), 1)
        a = assoc[0]
        self.assertEqual(a["outcome"], "released")
        self.assertEqual(a["instances_stored"], 20)
        self.assertEqual(a["instances_refused"], 0)
        self.assertEqual(a["called_ae"], NODE_AE)
        self.assertEqual(a["peer_address"], LOOPBACK)
        self.assertIsNotNone(a["ended_at"])
        self.assertGreaterEqual(a["ended_at"], a["started_at"])
        self.assertEqual(s["last_association"], a["id"])
        self.assertEqual(
            node.scalar("SELECT count(*) FROM instances WHERE association_id = ?", (a["id"],)),
            20)

        self.assertStopsCleanly(node)

    def test_bind_address_and_log_file(self):
        log_file = self.tmp / "segnode-file.log"
        node = self.node({"log": {"level": "debug", "file": str(log_file)}})
        # Bound to 127.0.0.1 only: another loopback address does not reach it.
        self.assertTrue(port_open(node.port, "127.0.0.1"))
        self.assertFalse(port_open(node.port, "127.0.0.2"),
                         "dicom.bind_address = 127.0.0.1 but the port answers on 127.0.0.2")
        ph = self.series(slices=2)
        self.assertProcOk(node.storescu(ph["files"]), "storescu")
        self.assertStopsCleanly(node)
        text = log_file.read_text()
        self.assertIn(f"listening as {NODE_AE} on 127.0.0.1:{node.port}", text)
        self.assertIn(ph["series_uid"], text)
        self.assertIn("segnode stopped", text)


if __name__ == "__main__":
    unittest.main()
