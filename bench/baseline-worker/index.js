// The emptiest Worker there is: the reliability suite drives it with the same requests as ours
// to tell how much of workerd's memory growth under load is the runtime's own.
export default {
  async fetch() {
    return new Response('{"success":true,"data":{"status":"ok"}}', { headers: { 'content-type': 'application/json' } });
  },
};
