using System.Runtime.CompilerServices;
using SharpTune.Workflows;

namespace SharpTune.Tests.Support;

/// <summary>Library-level tests expect what the CLI has: report charts and Parquet reading from SharpTune.Workflows.</summary>
internal static class WorkflowsRegistration
{
    [ModuleInitializer]
    internal static void Register() => SharpTuneWorkflows.Register();
}
