import { RegistryStorage } from "../e2e/registry-storage";
import { writeRepositories } from "./scale";
const s = new RegistryStorage("/tmp/bt/store");
let t = Date.now(); writeRepositories(s, 100, 5); console.log("small", Date.now() - t);
t = Date.now(); writeRepositories(s, 1000, 50); console.log("big", Date.now() - t);
