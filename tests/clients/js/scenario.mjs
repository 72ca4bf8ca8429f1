// The AWS SDK for JavaScript v3 against ec2gw: images, a launch, the SDK's waiter and
// paginator, tags, errors, termination. Run by tests/clients/test_js_sdk.py, which passes
// the endpoint and a key in the environment and checks the JSON printed on stdout.
import {
  CreateTagsCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  EC2Client,
  paginateDescribeInstances,
  RunInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceTerminated,
} from "@aws-sdk/client-ec2";

const client = new EC2Client({
  endpoint: process.env.EC2GW_URL,
  region: process.env.EC2GW_REGION,
  credentials: {
    accessKeyId: process.env.EC2GW_ACCESS_KEY_ID,
    secretAccessKey: process.env.EC2GW_SECRET_ACCESS_KEY,
  },
  maxAttempts: 1,
});

// An SDK error as what a caller sees of it.
async function failure(promise) {
  try {
    await promise;
  } catch (err) {
    return { name: err.name, status: err.$metadata?.httpStatusCode, message: err.message };
  }
  return null;
}

const instancesOf = (reservations) => reservations.flatMap((r) => r.Instances);
const waitConfig = { client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 };
const out = {};

const images = await client.send(
  new DescribeImagesCommand({ Owners: ["amazon"], Filters: [{ Name: "name", Values: ["ubuntu-*"] }] }),
);
out.images = images.Images.map((i) => ({ id: i.ImageId, name: i.Name, state: i.State }));
const imageId = images.Images[0].ImageId;

const launch = {
  ImageId: imageId,
  InstanceType: "t3.small",
  MinCount: 6,
  MaxCount: 6,
  // The JS SDK sends UserData as given: the caller encodes it.
  UserData: Buffer.from("#!/bin/sh\necho js\n").toString("base64"),
  TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "sdk", Value: "js-v3" }] }],
};
out.dryRun = await failure(client.send(new RunInstancesCommand({ ...launch, DryRun: true })));
const reservation = await client.send(new RunInstancesCommand(launch));
const ids = reservation.Instances.map((i) => i.InstanceId).sort();
out.reservationId = reservation.ReservationId;
out.launched = ids;

out.waitRunning = (await waitUntilInstanceRunning(waitConfig, { InstanceIds: ids })).state;

await client.send(new CreateTagsCommand({ Resources: [ids[0]], Tags: [{ Key: "Name", Value: "js-0" }] }));
const described = await client.send(
  new DescribeInstancesCommand({ Filters: [{ Name: "tag:sdk", Values: ["js-v3"] }] }),
);
out.described = instancesOf(described.Reservations).map((i) => ({
  id: i.InstanceId,
  state: i.State.Name,
  code: i.State.Code,
  type: i.InstanceType,
  image: i.ImageId,
  launchTime: i.LaunchTime instanceof Date ? i.LaunchTime.toISOString() : null,
  tags: Object.fromEntries((i.Tags ?? []).map((t) => [t.Key, t.Value])),
}));

out.pages = [];
for await (const page of paginateDescribeInstances({ client, pageSize: 5 }, {})) {
  out.pages.push(instancesOf(page.Reservations).map((i) => i.InstanceId));
}

out.notFound = await failure(client.send(new DescribeInstancesCommand({ InstanceIds: ["i-0fffffff"] })));

const terminated = await client.send(new TerminateInstancesCommand({ InstanceIds: ids }));
out.terminating = terminated.TerminatingInstances.map((t) => [t.InstanceId, t.CurrentState.Name]);
out.waitTerminated = (await waitUntilInstanceTerminated(waitConfig, { InstanceIds: ids })).state;

console.log(JSON.stringify(out));
