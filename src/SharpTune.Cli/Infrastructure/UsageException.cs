namespace SharpTune.Cli.Infrastructure;

/// <summary>The user asked for something the command cannot do as given (exit code 2).</summary>
public sealed class UsageException(string message) : Exception(message);
