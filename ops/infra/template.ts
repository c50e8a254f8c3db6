/**
 * Reading a synthesized template: the container definitions of each ECS service and of the
 * scheduled task, as the stack wrote them. Used by the template assertions and the boot test.
 */
import { buildApp } from "./app.js";

export type Template = {
  // biome-ignore lint/suspicious/noExplicitAny: CloudFormation properties are untyped JSON, read by tests
  Resources: Record<string, { Type: string; Properties?: any }>;
};

export type ContainerDefinition = {
  Name: string;
  Command?: string[];
  Environment?: { Name: string; Value: unknown }[];
  Secrets?: { Name: string; ValueFrom: unknown }[];
  DependsOn?: { ContainerName: string; Condition: string }[];
  HealthCheck?: { Command: string[] };
  Essential?: boolean;
  StopTimeout?: number;
  Image?: unknown;
};

/** Synthesizes the app (offline) into `outdir` and returns its one stack's template. */
export function synthTemplate(env: NodeJS.ProcessEnv, outdir: string): Template {
  const assembly = buildApp(env, outdir).synth();
  const [stack] = assembly.stacks;
  if (!stack || assembly.stacks.length !== 1)
    throw new Error(`expected one stack, got ${assembly.stacks.length}`);
  return stack.template as Template;
}

export function resourcesOfType(template: Template, type: string) {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === type)
    .map(([id, r]) => ({ id, properties: r.Properties ?? {} }));
}

export type ServiceTask = {
  /** ECS service name (`custody-<env>-<plan id>`), or the task family for the scheduled task. */
  name: string;
  taskDefinitionId: string;
  containers: ContainerDefinition[];
};

function refOf(value: unknown): string | undefined {
  return value && typeof value === "object" && "Ref" in value ? String(value.Ref) : undefined;
}

/** Every ECS service with its task definition's containers. */
export function serviceTasks(template: Template): ServiceTask[] {
  const defs = new Map(
    resourcesOfType(template, "AWS::ECS::TaskDefinition").map((d) => [d.id, d.properties]),
  );
  return resourcesOfType(template, "AWS::ECS::Service").map((s) => {
    const taskDefinitionId = refOf(s.properties.TaskDefinition);
    const def = taskDefinitionId ? defs.get(taskDefinitionId) : undefined;
    if (!taskDefinitionId || !def) throw new Error(`service ${s.id}: task definition not found`);
    return {
      name: String(s.properties.ServiceName),
      taskDefinitionId,
      containers: def.ContainerDefinitions as ContainerDefinition[],
    };
  });
}

/** Task definitions run by an EventBridge rule (the scheduled one-shots). */
export function scheduledTasks(template: Template): ServiceTask[] {
  const defs = new Map(
    resourcesOfType(template, "AWS::ECS::TaskDefinition").map((d) => [d.id, d.properties]),
  );
  return resourcesOfType(template, "AWS::Events::Rule").flatMap((rule) =>
    (rule.properties.Targets as { EcsParameters?: { TaskDefinitionArn: unknown } }[])
      .filter((t) => t.EcsParameters)
      .map((t) => {
        const id = refOf(t.EcsParameters?.TaskDefinitionArn);
        const def = id ? defs.get(id) : undefined;
        if (!id || !def) throw new Error(`rule ${rule.id}: task definition not found`);
        return {
          name: String(def.Family),
          taskDefinitionId: id,
          containers: def.ContainerDefinitions as ContainerDefinition[],
        };
      }),
  );
}

export function containerNamed(task: ServiceTask, name: string): ContainerDefinition {
  const c = task.containers.find((x) => x.Name === name);
  if (!c) throw new Error(`${task.name}: no container "${name}"`);
  return c;
}
